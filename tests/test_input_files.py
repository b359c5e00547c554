"""Input files that are not what they claim: :func:`epiflow.input_files.read_text_file` and
:func:`~epiflow.input_files.open_npz` name the file and say what was expected."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.input_files import TextFileError, open_npz, read_text_file

RANDOM = np.random.default_rng(0).bytes(300)


class TestReadTextFile:
    def test_text_comes_back_and_a_byte_order_mark_is_dropped(self, tmp_path):
        path = tmp_path / "a.toml"
        path.write_bytes(b"\xef\xbb\xbfname = \"\xc3\xa9\"\n")
        assert read_text_file(path, "a TOML") == 'name = "\u00e9"\n'

    def test_random_bytes(self, tmp_path):
        path = tmp_path / "cams.toml"
        path.write_bytes(RANDOM)
        with pytest.raises(TextFileError) as err:
            read_text_file(path, "a camera TOML")
        msg = str(err.value)
        assert msg.startswith(f"{path} is not a text file (byte 0x") and "utf-8" not in msg
        assert msg.endswith("expected a camera TOML")

    def test_the_first_bad_byte_is_located(self, tmp_path):
        path = tmp_path / "a.json"
        path.write_bytes(b"\xef\xbb\xbf{}\n\xff")
        with pytest.raises(TextFileError, match=r"byte 0xff at offset 6 is not UTF-8"):
            read_text_file(path, "JSON")
        path.write_bytes(b"{}\x00\x00")
        with pytest.raises(TextFileError, match=r"a NUL byte at offset 2"):
            read_text_file(path, "JSON")

    def test_missing_or_a_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"'.*nope\.toml' is missing; expected X"):
            read_text_file(tmp_path / "nope.toml", "X")
        with pytest.raises(FileNotFoundError, match="is a folder; expected X"):
            read_text_file(tmp_path, "X")


class TestOpenNpz:
    @pytest.mark.parametrize("content", [RANDOM, b"", b"PK\x03\x04 half a zip"])
    def test_not_an_npz(self, content, tmp_path):
        path = tmp_path / "r.npz"
        path.write_bytes(content)
        with pytest.raises(ValueError) as err:
            open_npz(path, "a poses npz")
        msg = str(err.value)
        assert msg.startswith(f"{path}: not an npz file") and msg.endswith("expected a poses npz")
        assert "allow_pickle" not in msg

    def test_an_npy_and_a_good_npz(self, tmp_path):
        np.save(tmp_path / "a.npy", np.zeros(3))
        with pytest.raises(ValueError, match=r"a single ndarray \(an \.npy\)"):
            open_npz(tmp_path / "a.npy", "X")
        np.savez(tmp_path / "b.npz", x=np.arange(3))
        with open_npz(tmp_path / "b.npz", "X") as z:
            assert z["x"].tolist() == [0, 1, 2]
