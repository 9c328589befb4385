-- A list with a filter and a sort (LIST_QUERY).
local key = os.getenv("HUB_KEY")
local path = "/v1/patients?" .. os.getenv("LIST_QUERY")
request = function()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. key })
end
