-- What LDoc makes of the documented modules, as data for spec/docs_spec.lua: an LDoc filter
-- (ldoc --filter spec.support.ldoc_facts.write, run from the checkout) that prints a Lua chunk
-- returning one entry per module:
--
--   { name = "eip", kind = "modules", items = { {
--       name = "new", type = "function", summary = "...", raise = "..." | nil,
--       params = { { name = "opts", type = "table" }, { name = "opts.endpoint", type = "string", opt = true },
--         { name = "opts.timeout", type = "number", opt = "30" }, ... },
--       returns = { { type = "eip.client", text = "..." }, ... } }, ... } }
--
-- The params of a table item are its fields (@tfield). A param's `opt` is true for `[opt]`, the
-- default's text for `[opt=...]`, nil when it is not marked optional.
--
-- It runs in LDoc's own Lua (5.1 or 5.2), whatever Lua the specs run under.
local M = {}

local function q(v)
  return v == nil and "nil" or string.format("%q", tostring(v))
end

local function params_of(item)
  local out = {}
  local mods_of = item.modifiers or {}
  local types = item.type == "table" and mods_of.field or mods_of.param or {} -- @tfield, @tparam
  local function add(name)
    local mods = types[name]
    local opt = mods and mods.opt
    out[#out + 1] = "{ name = " .. q(name) .. ", type = " .. q(mods and mods.type)
      .. ", opt = " .. (opt == true and "true" or q(opt)) .. " }"
  end
  for _, name in ipairs(item.params or {}) do
    add(name)
    for _, sub in ipairs(item.subparams and item.subparams[name] or {}) do add(sub) end
  end
  return "{ " .. table.concat(out, ", ") .. " }"
end

local function returns_of(item)
  local out = {}
  for _, group in ipairs(item.retgroups or {}) do
    for _, r in ipairs(group) do
      out[#out + 1] = "{ type = " .. q(r.type ~= "" and r.type or nil) .. ", text = " .. q(r.text) .. " }"
    end
  end
  return "{ " .. table.concat(out, ", ") .. " }"
end

--- The filter: writes the chunk to stdout.
function M.write(module_list)
  local lines = { "return {" }
  for mod in module_list:iter() do
    lines[#lines + 1] = "  { name = " .. q(mod.name) .. ", kind = " .. q(mod.kind) .. ", items = {"
    for item in mod.items:iter() do
      lines[#lines + 1] = "    { name = " .. q(item.name) .. ", type = " .. q(item.type)
        .. ", summary = " .. q(item.summary) .. ", raise = " .. q(item.raise)
        .. ", params = " .. params_of(item) .. ", returns = " .. returns_of(item) .. " },"
    end
    lines[#lines + 1] = "  } },"
  end
  lines[#lines + 1] = "}"
  io.write(table.concat(lines, "\n"), "\n")
end

return M
