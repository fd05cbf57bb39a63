--- Signed requests in flight and refused signatures, counted across the workers of one nginx.
--
-- Five refused AK/SK signatures in a row lock the key for 5 minutes, for every user of it. A
-- client counts the signed requests it has in flight and the refusals it got in a row (see
-- eip.pipeline's signing_room and eip.auth's rejected), but each nginx worker has its own copy
-- of a client: with the client option `signing_dict`, the workers keep these counts in that
-- lua_shared_dict instead, per key (an AK and its SK), so that all of them together keep to the
-- four in flight and three refusals one client keeps to.
--
-- Per key, under "eip:sign:<md5 of AK and SK>:": `flying` (requests in flight: a place is
-- taken with one atomic incr, and given back when its answer is taken, or by its worker once
-- its timeout has passed), `strikes` (refusals in a row) and `refused` (three were: nothing is
-- signed with the key again, by any worker, until the dict is emptied or nginx restarted). The
-- flying count expires when no request took a place for longer than a request may take, so a
-- worker that died holding places does not hold them for ever. When the dict cannot hold a
-- count (full, or a key holding something else), the worker counts on its own, as without it.
-- @module eip.signing
local errors = require "eip.errors"

local M = {}

local Shared = {}
Shared.__index = Shared

--- The shared counts of the lua_shared_dict `name` (a usage error naming `signing_dict` outside
-- nginx, or when this nginx has no such dict).
function M.new(name)
  if type(name) ~= "string" or name == "" then
    errors.raise_usage("signing_dict", "must be the name of a lua_shared_dict")
  end
  local ngx = rawget(_G, "ngx")
  local dict = ngx and ngx.shared and ngx.shared[name]
  if not dict then
    errors.raise_usage("signing_dict", "names no lua_shared_dict of this nginx (%q): it is for use inside nginx",
      name:sub(1, 40))
  end
  return setmetatable({ dict = dict, md5 = ngx.md5, prefixes = setmetatable({}, { __mode = "k" }) }, Shared)
end

--- The prefix of the counts of `keys` (a provider with `ak` and `sk`), made once per keys.
function Shared:prefix(keys)
  local p = self.prefixes[keys]
  if not p then
    p = "eip:sign:" .. self.md5(keys.ak .. "\n" .. keys.sk) .. ":"
    self.prefixes[keys] = p
  end
  return p
end

--- The refusals in a row, the places taken, and whether the key is refused, as the dict holds
-- them (0, 0, false when it holds nothing).
function Shared:read(prefix)
  local dict = self.dict
  local strikes, flying = dict:get(prefix .. "strikes"), dict:get(prefix .. "flying")
  return tonumber(strikes) or 0, tonumber(flying) or 0, dict:get(prefix .. "refused") ~= nil
end

--- Takes a place when fewer than `max` are taken: true, false (none free: nothing taken), or
-- nil when the dict cannot count (the worker then counts on its own). `ttl`: how long the count
-- lives without a new place taken (longer than any request takes).
function Shared:take(prefix, max, ttl)
  local dict, key = self.dict, prefix .. "flying"
  local n = dict:incr(key, 1, 0)
  if not n then return nil end
  dict:expire(key, ttl)
  if n > max then
    dict:incr(key, -1, 1)
    return false
  end
  return true
end

--- Gives a place back.
function Shared:give(prefix)
  local dict, key = self.dict, prefix .. "flying"
  local n = dict:incr(key, -1, 1)
  if n and n < 0 then dict:set(key, 0) end
end

--- A refusal: the count in a row after it (nil when the dict cannot count).
function Shared:strike(prefix)
  return (self.dict:incr(prefix .. "strikes", 1, 0))
end

--- An answer that passed the check of the key: the refusals in a row start again from none.
function Shared:clear(prefix)
  self.dict:set(prefix .. "strikes", 0)
end

--- The key is refused: no worker signs with it again.
function Shared:refuse(prefix)
  self.dict:set(prefix .. "refused", true)
end

return M
