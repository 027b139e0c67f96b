import subprocess
import sys

from tests.store.helpers import ROOT, subprocess_env


def run_py(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=subprocess_env(), timeout=60)


def test_import_does_not_load_django():
    r = run_py("import sys, vaults.store, vaults.store.cli; "
               "print('django' in sys.modules or any(m.startswith('django') for m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_vaults_init_is_empty():
    import os
    assert os.path.getsize(os.path.join(ROOT, "vaults", "__init__.py")) == 0


def test_refuses_without_compiled_chunker(tmp_path):
    code = f"""
import sys, warnings
warnings.simplefilter('ignore')
sys.modules['pyfastcdc.cy'] = None          # the compiled extension cannot be imported
from vaults.store import Store, LocalBackend, ChunkerUnavailable
try:
    Store.init(LocalBackend({str(tmp_path / 's')!r}, create=True), bytes(32), cache_dir={str(tmp_path / 'c')!r})
except ChunkerUnavailable as e:
    print('REFUSED', e)
else:
    print('RAN')
"""
    r = run_py(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("REFUSED"), r.stdout + r.stderr
    assert not (tmp_path / "s" / "config").exists()


def test_cli_refuses_without_compiled_chunker(tmp_path):
    code = f"""
import sys, warnings
warnings.simplefilter('ignore')
sys.modules['pyfastcdc.cy'] = None
from vaults.store.cli import main
sys.exit(main(['--store', {str(tmp_path / 's')!r}, 'init']))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=subprocess_env(STRONGROOM_STORE_KEY="00" * 32))
    assert r.returncode == 1
    assert "compiled FastCDC" in r.stderr
