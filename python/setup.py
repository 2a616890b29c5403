"""pip install ./python (offline: needs only Debian's python3, python3-setuptools, python3-numpy).

Copies the shared library built by `make python` (../build/libfqlm.so, or FQLM_LIB) into the
package, so the installed fqlm finds it without any environment variable."""
import os
import re
import shutil

from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
with open(os.path.join(root, "include", "fqlm.h")) as f:
    version = re.search(r'#define FQLM_VERSION "([^"]+)"', f.read()).group(1)
so = os.environ.get("FQLM_LIB") or os.path.join(root, "build", "libfqlm.so")
if not os.path.exists(so):
    raise SystemExit("fqlm: %s not found: run `make python` in %s first (or set FQLM_LIB)" % (so, root))
copy = os.path.join(here, "fqlm", "libfqlm.so")
shutil.copyfile(so, copy)

try:
    setup(
        name="fqlm",
        version=version,
        description="Fake quantization of llama-family GGUF models: the fqlm engine from numpy",
        packages=["fqlm"],
        package_data={"fqlm": ["libfqlm.so"]},
        install_requires=["numpy"],
        python_requires=">=3.8",
        zip_safe=False,
    )
finally:
    os.remove(copy)  # the source tree keeps using ../build/libfqlm.so
