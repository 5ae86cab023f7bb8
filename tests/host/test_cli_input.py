"""Bad input to the host commands: outputs that are inputs, wrong files, out-of-range numbers, missing
ports. Each gets one clear line and a non-zero exit, never a traceback, and no input is ever lost."""
import subprocess
import sys


def test_replay_does_not_import_the_logger():
    # Session lives in packwatch.session: re-decoding a capture needs none of the serial-port code
    code = "import sys, packwatch.replay; print('packwatch.logger' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
