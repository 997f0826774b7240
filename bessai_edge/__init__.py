"""bessai-edge: a Modbus TCP edge gateway for battery energy storage sites."""

__version__ = "0.1.0"

# The version shown to users (--version, the start line, /health, metrics). A package
# build for another version (BESSAI_DEB_VERSION) rewrites this line in its own copy of
# the tree, while __version__ stays the Python package's version.
package_version = __version__
