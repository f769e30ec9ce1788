import joblib

from skfindkit.cli import main


def test_demo_prints_table_saves_pipeline_and_gallery(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "-k", "5", "--queries", "2"]) == 0
    out = capsys.readouterr().out
    assert "P@5" in out and "configuration" in out and "gallery written to" in out
    assert out.count("query digit #") == 2
    assert (tmp_path / "digits_gallery.png").stat().st_size > 10_000
    system = joblib.load(tmp_path / "digits_retrieval.joblib")
    assert system[-1].n_neighbors == 5 and len(system[-1].item_keys_) == system[-1].n_samples_fit_



def test_cli_usage_errors(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["no-such-command"])
