# live.mk - `make test-live`: scripts/live-check.lua against the real cloud (NOT part of make test).
# Needs EIP_LIVE=1 and credentials (environment, ~/.huaweicloud/credentials or ECS metadata) and
# HUAWEICLOUD_SDK_REGION (or EIP_ENDPOINT). It creates and deletes one pay-per-use bandwidth.
.PHONY: test-live

test-live: all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(CORE_DIR)/?.so;;" $(LUA) scripts/live-check.lua
