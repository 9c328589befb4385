-- POST /v1/appointments: each thread books its own practitioners, each
-- request the next free half hour of one of them (no two clash).
local key = os.getenv("HUB_KEY")
local prcs, patient, clinic, aty = {}, os.getenv("PATIENT_ID"), os.getenv("CLINIC_ID"), os.getenv("ATY_ID")
for id in string.gmatch(os.getenv("PRACTITIONERS"), "[^,]+") do prcs[#prcs + 1] = id end
local base = tonumber(os.getenv("BASE_SECS"))
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
local tid, n = 0, 0
function init(args)
  tid = wrk.thread:get("tid")
end
request = function()
  n = n + 1
  local per = math.floor(#prcs / 2)
  local p = prcs[(tid - 1) * per + (n % per) + 1]
  local slot = math.floor(n / per)
  local t = os.date("!%Y-%m-%dT%H:%M:%S.000Z", base + slot * 1800)
  local body = string.format(
    '{"patientId":"%s","practitionerId":"%s","clinicId":"%s","appointmentTypeId":"%s","startAt":"%s"}',
    patient, p, clinic, aty, t)
  return wrk.format("POST", "/v1/appointments", { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }, body)
end
