-- POST /v1/patients with varied bodies.
local key = os.getenv("HUB_KEY")
local clinic, status, referral = os.getenv("CLINIC_ID"), os.getenv("STATUS_ID"), os.getenv("REFERRAL_ID")
local cities = { "Leeds", "York", "London", "Manchester", "Bristol", "Hull", "Bradford", "Sheffield" }
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"fullName":"Bench Person %d","primaryPhoneNumber":"07700 900%03d","emailAddress":"bench%d@example.com","gender":"female","address":{"city":"%s","country":"GBR"},"tracking":{"source":"bench"},"primaryClinicId":"%s","statusId":"%s","referralId":"%s"}',
    n, n % 1000, n, cities[n % 8 + 1], clinic, status, referral)
  return wrk.format("POST", "/v1/patients", { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
