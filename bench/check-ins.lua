-- POST /v1/check-ins: members (each with a membership) checking in,
-- round-robin, so a check-in rarely waits for the same member's.
local key = os.getenv("HUB_KEY")
local clinic = os.getenv("CLINIC_ID")
local members = {}
for id in string.gmatch(os.getenv("MEMBERS"), "[^,]+") do members[#members + 1] = id end
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"patientId":"%s","clinicId":"%s"}', members[(n % #members) + 1], clinic)
  return wrk.format("POST", "/v1/check-ins", { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
