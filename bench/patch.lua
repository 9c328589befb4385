-- PATCH /v1/patients/{random loaded id}: a new city and age (no If-Match).
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local key = os.getenv("HUB_KEY")
local cities = { "Leeds", "York", "London", "Manchester", "Bristol", "Hull", "Bradford", "Sheffield" }
math.randomseed(os.time())
request = function()
  local body = string.format('{"address":{"city":"%s"},"age":%d}', cities[math.random(8)], 20 + math.random(70))
  return wrk.format("PATCH", "/v1/patients/" .. ids[math.random(#ids)],
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
