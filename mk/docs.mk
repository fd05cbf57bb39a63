# docs.mk - `make docs`: the LDoc reference of the public Lua API, written to docs/.
# Needs the Debian package lua-ldoc (not needed by `make test`, so not in DEBIAN_PKGS).
.PHONY: docs

docs:
	@command -v ldoc >/dev/null 2>&1 || { echo "docs: ldoc not found: apt-get install lua-ldoc"; exit 1; }
	ldoc -c config.ld .
