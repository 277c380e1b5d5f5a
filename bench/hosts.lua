-- wrk script: spreads requests over many hosts, one after another, alternating the paths / and /api.
-- `wrk -s bench/hosts.lua URL -- PREFIX FIRST COUNT` requests PREFIX-FIRST.example.com up to
-- PREFIX-(FIRST+COUNT-1).example.com (the hosts `manifests()` in bench/run.ts creates).
local requests = {}
local cursor = 0

function init(args)
  local prefix = args[1] or "app"
  local first = tonumber(args[2] or "0")
  local count = tonumber(args[3] or "1")
  for n = first, first + count - 1 do
    local headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    headers["Host"] = prefix .. "-" .. n .. ".example.com"
    requests[#requests + 1] = wrk.format("GET", (n % 2 == 0) and "/" or "/api", headers)
  end
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end
