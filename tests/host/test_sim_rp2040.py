"""`packwatch sim --target rp2040` refuses missing inputs in one line (no emulator needed)."""
from packwatch.cli import main


def test_missing_uf2_is_one_line_naming_the_option(tmp_path, capsys):
    missing = tmp_path / "nope.uf2"
    rc = main(["sim", "--target", "rp2040", "--uf2", str(missing), "--bootrom", str(missing), "--duration", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(missing) in err and "--uf2" in err


def test_missing_boot_rom_is_one_line_naming_the_option(tmp_path, capsys):
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(b"\0" * 512)
    rc = main(["sim", "--target", "rp2040", "--uf2", str(uf2), "--bootrom", str(tmp_path / "rom.bin"),
               "--duration", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1
    assert "--bootrom" in err
