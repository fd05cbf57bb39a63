# docs.mk - `make docs`: the LDoc reference of the public Lua API (config.ld), written to docs/.
# LDoc and lua-discount (its Markdown: Debian's LDoc has none of its own) come from the
# dependency step, deps-docs. A warning fails the build; spec/docs_spec.lua checks that every
# public function and option is documented with parameters, returns and errors.
.PHONY: docs

docs: deps-docs
	@rm -rf docs
	ldoc --fatalwarnings -c config.ld .
