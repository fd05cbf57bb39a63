rockspec_format = "3.0"
package = "eip"
version = "scm-1"
source = {
   url = "git+https://example.invalid/lua-eip.git",
}
description = {
   summary = "Huawei Cloud EIP shared-bandwidth operations (DeleteSharedBandwidth) from Lua and OpenResty",
   detailed = [[
      A C core (libcurl, OpenSSL libcrypto) performs the HTTP exchange, AK/SK signing and the
      status mapping; a Lua layer exposes eip.new / client:delete_bandwidth and raises
      structured errors. Works in Lua 5.1 (LuaJIT/OpenResty) through 5.4.
      Requires libcurl >= 7.85 and OpenSSL >= 3.0 (development headers); the build stops
      with an #error naming the library when either is older.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1",
   "lua-cjson",
}
external_dependencies = {
   -- Debian keeps curl/curl.h under a multiarch include dir, so look for the library only.
   CURL = { library = "curl" },
   CRYPTO = { header = "openssl/hmac.h", library = "crypto" },
}
build = {
   type = "builtin",
   install = { bin = { eip = "bin/eip" } },
   modules = {
      ["eip.core"] = {
         sources = { "src/eip_core.c", "src/http.c", "src/multi.c", "src/status.c", "src/sign.c",
                     "src/interrupt.c" },
         defines = { "_DEFAULT_SOURCE" },
         incdirs = { "src", "$(CURL_INCDIR)", "$(CRYPTO_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)", "$(CRYPTO_LIBDIR)" },
         libraries = { "curl", "crypto", "pthread" }, -- pthread_once: libcurl's one-time init
      },
      ["eip"] = "lua/eip/init.lua",
      ["eip.auth"] = "lua/eip/auth.lua",
      ["eip.body"] = "lua/eip/body.lua",
      ["eip.client"] = "lua/eip/client.lua",
      ["eip.batch"] = "lua/eip/batch.lua",
      ["eip.errors"] = "lua/eip/errors.lua",
      ["eip.ops"] = "lua/eip/ops.lua",
      ["eip.profile"] = "lua/eip/profile.lua",
      ["eip.proxy"] = "lua/eip/proxy.lua",
      ["eip.regions"] = "lua/eip/regions.lua",
      ["eip.pipeline"] = "lua/eip/pipeline.lua",
      ["eip.retry"] = "lua/eip/retry.lua",
      ["eip.log"] = "lua/eip/log.lua",
      ["eip.sign"] = "lua/eip/sign.lua",
      ["eip.validate"] = "lua/eip/validate.lua",
      ["eip.time"] = "lua/eip/time.lua",
      ["eip.transport"] = "lua/eip/transport/init.lua",
      ["eip.transport.cosocket"] = "lua/eip/transport/cosocket.lua",
      ["eip.transport.curl"] = "lua/eip/transport/curl.lua",
      ["eip.transport.http1"] = "lua/eip/transport/http1.lua",
      ["eip.bandwidths"] = "lua/eip/bandwidths.lua",
      ["eip.cli"] = "lua/eip/cli/init.lua",
      ["eip.cli.args"] = "lua/eip/cli/args.lua",
      ["eip.cli.connection"] = "lua/eip/cli/connection.lua",
      ["eip.cli.json"] = "lua/eip/cli/json.lua",
      ["eip.cli.output"] = "lua/eip/cli/output.lua",
      ["eip.cli.progress"] = "lua/eip/cli/progress.lua",
      ["eip.cli.delete_bandwidth"] = "lua/eip/cli/delete_bandwidth.lua",
      ["eip.cli.show_bandwidth"] = "lua/eip/cli/show_bandwidth.lua",
      ["eip.cli.list_bandwidths"] = "lua/eip/cli/list_bandwidths.lua",
      ["eip.cli.status"] = "lua/eip/cli/status.lua",
   },
}
