--- The nginx configuration of the EIP emulator, as a template: eip.emulator fills in the
-- @NAME@ placeholders (eip.emulator.nginx renders it). A Lua module rather than a file so that
-- LuaRocks installs it with the other modules and the launcher finds it by `require`.
-- @SERVERS@ is one server block per endpoint the instance models (see M.server).
-- @module eip.emulator.server.nginx_conf
local M = {}

--- The server block of one endpoint: `role` is "api" (the VPC/EIP endpoint), "iam", "metadata"
-- or "any" (every route on one port); eip.emulator.server.app answers by it.
function M.server(port, role)
  return string.format([[
    server {
        listen 127.0.0.1:%d;
        # What nginx refuses before any Lua runs is answered as the gateway answers it (JSON, an
        # X-Request-Id), not with nginx's HTML page: a method it serves nowhere (TRACE) as any
        # method no API has; a body over client_max_body_size (413), a request line over a
        # buffer (414), a header line over one or all of them over the four (494: nginx's own
        # status, the gateway's too), a request it cannot read (400), a Transfer-Encoding it does
        # not implement (501), an HTTP version it does not speak (505). The buffers are the
        # gateway's limits: 32 KB for the URI and for a header, 128 KB for all of them.
        large_client_header_buffers 4 32k;
        error_page 405 = @no_such_method;
        error_page 413 = @too_large;
        error_page 494 = @headers_too_large;
        # (A request line nginx could not read leaves no URI, which a named location needs: these
        # go to a URI, their status kept, and come as GET.)
        error_page 400 414 501 505 /.refused;
        location / {
            content_by_lua_block {
                require("eip.emulator.server.app").handle("%s")
            }
        }
        location @no_such_method {
            content_by_lua_block {
                require("eip.emulator.server.app").handle("%s")
            }
        }
        location @too_large {
            content_by_lua_block {
                require("eip.emulator.server.app").handle("%s", 413)
            }
        }
        location @headers_too_large {
            content_by_lua_block {
                require("eip.emulator.server.app").handle("%s", 494)
            }
        }
        # (asked for by a client, no refusal: an API it is not)
        location = /.refused {
            content_by_lua_block {
                local app = require("eip.emulator.server.app")
                app.handle("%s", ngx.req.is_internal() and tonumber(ngx.var.status) or nil)
            }
        }
    }
]], port, role, role, role, role, role)
end

M.template = [=[
# nginx configuration of the EIP emulator. eip.emulator fills in the placeholders;
# everything nginx writes (pid, logs, temp files) stays under its prefix, so it runs as root or
# not without touching /var/log/nginx, /var/lib/nginx or /run. Paths are quoted: a prefix may
# hold spaces (eip.emulator.nginx refuses quotes, backslashes and control characters).
@USER_DIRECTIVE@
worker_processes 1;
pid "@PREFIX@/nginx.pid";
error_log "@PREFIX@/error.log" warn;
# A graceful stop must not wait for "hang" and "trickle" injections to finish.
worker_shutdown_timeout 1s;

load_module "@MODULES_DIR@/ndk_http_module.so";
load_module "@MODULES_DIR@/ngx_http_lua_module.so";

events {
    worker_connections 1024;
}

http {
    access_log off;
    server_tokens off;

    client_body_temp_path "@PREFIX@/tmp/client_body";
    proxy_temp_path "@PREFIX@/tmp/proxy";
    fastcgi_temp_path "@PREFIX@/tmp/fastcgi";
    uwsgi_temp_path "@PREFIX@/tmp/uwsgi";
    scgi_temp_path "@PREFIX@/tmp/scgi";

    client_max_body_size 16m;
    client_body_buffer_size 1m;
    keepalive_requests 100000;
    keepalive_timeout 60s;

    lua_package_path "@LUA_DIR@/?.lua;;";
    lua_shared_dict emulator 32m;
    # End a handler (e.g. a "hang") as soon as its client goes away.
    lua_check_client_abort on;
    lua_socket_log_errors off;

    init_worker_by_lua_block {
        require("eip.emulator.server.app").init_worker(@OWNER_PID@, "@PREFIX@")
    }

@SERVERS@
}
]=]

return M
