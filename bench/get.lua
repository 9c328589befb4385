-- GET /v1/patients/{random loaded id}
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local key = os.getenv("HUB_KEY")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/v1/patients/" .. ids[math.random(#ids)], { ["Authorization"] = "Bearer " .. key })
end
