import numpy as np, pickle, warnings, tempfile, os
warnings.simplefilter("error")
from skfindkit import ExactIndex, HNSWIndex, AnnoyIndex, BM25Index, ShardedIndex, FaissIndex, NMSLibIndex
import skfindkit.io as sio
rng=np.random.default_rng(0); X=rng.normal(size=(300,8)).astype(np.float32); Q=rng.normal(size=(5,8))
for idx in [ExactIndex(n_neighbors=5), HNSWIndex(n_neighbors=5), HNSWIndex(n_neighbors=5, keep_vectors=False), AnnoyIndex(n_neighbors=5), ShardedIndex(n_shards=3), FaissIndex(n_neighbors=5), NMSLibIndex(n_neighbors=5)]:
    idx.fit(X)
    d0,i0=idx.kneighbors(Q)
    idx.remove(i0[:,0])
    d,i=idx.kneighbors(Q)
    assert not np.isin(i, i0[:,0]).any()
    live=idx.live_mask_
    ref=ExactIndex(n_neighbors=5).fit(X[live])
    rd,ri=ref.kneighbors(Q); ri=np.flatnonzero(live)[ri]
    f=np.arange(0,300,7)
    d,i=idx.kneighbors(Q, filter=f)
    assert np.isin(i, f).all() and not np.isin(i, i0[:,0]).any()
    g=idx.kneighbors_graph(None); assert g.shape==(300,300)
    idx2=pickle.loads(pickle.dumps(idx)); assert idx2.n_items_==idx.n_items_
    assert (idx2.kneighbors(Q)[1]==idx.kneighbors(Q)[1]).all()
    with tempfile.TemporaryDirectory() as t:
        sio.save(idx, os.path.join(t,'a.skf')); idx3=sio.load(os.path.join(t,'a.skf'))
        assert (idx3.kneighbors(Q)[1]==idx.kneighbors(Q)[1]).all()
    idx.partial_fit(X[:3]); assert idx.n_samples_fit_==303 and idx.n_items_==298
    print(type(idx).__name__, idx.n_items_, (i==ri).mean())
