-- Argo CD health check for BatchEvaluation (evals.agentcore.dev/v1alpha1).
-- Install it under the argocd-cm key
--   resource.customizations.health.evals.agentcore.dev_BatchEvaluation
-- Only Lua's base library is used: Argo CD gives user-configured scripts no string library.
--
--   Progressing  not yet observed by the operator, queued, running, stopping, retrying, deleting,
--                or finished with passCriteria not judged yet (Passed=Unknown)
--   Healthy      the job finished: Completed or CompletedWithErrors (Ready=True), and met its
--                passCriteria if it has some (Passed=True)
--   Degraded     Stalled=True: the job failed, the service rejected the spec, access denied, ...;
--                or the job finished but missed its passCriteria (Passed=False)
--   Suspended    stopped on request (spec.stop: true); the results so far are kept
local hs = {}

-- A condition counts only if it was written for the current generation.
local function condition(status, generation, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      if c.observedGeneration ~= nil and c.observedGeneration ~= generation then
        return nil
      end
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil or c.reason == nil then
    return fallback
  end
  if c.message == nil or c.message == "" then
    return c.reason
  end
  return c.reason .. ": " .. c.message
end

local status = obj.status
local generation = obj.metadata.generation

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  local step = "waiting for the operator"
  if status ~= nil and status.cleanupStep ~= nil then
    step = status.cleanupStep
  end
  hs.message = "Deleting: the operator removes the remote job before the object (" .. step .. ")"
  if status ~= nil then
    local stalled = condition(status, generation, "Stalled")
    if stalled ~= nil and stalled.status == "True" then
      hs.message = hs.message .. "; blocked: " .. describe(stalled, "Stalled")
    end
  end
  return hs
end

-- Conditions from an older generation describe a spec that no longer exists.
if status == nil or status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, generation, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local ready = condition(status, generation, "Ready")
if ready ~= nil and ready.reason == "StoppedOnRequest" then
  hs.status = "Suspended"
  hs.message = describe(ready, "StoppedOnRequest")
  return hs
end

if ready ~= nil and ready.status == "True" then
  -- The quality gate (spec.passCriteria): absent without criteria.
  local passed = condition(status, generation, "Passed")
  if passed ~= nil and passed.status == "False" then
    hs.status = "Degraded"
    hs.message = describe(passed, "Passed=False")
    return hs
  end
  if passed ~= nil and passed.status ~= "True" then
    hs.status = "Progressing"
    hs.message = describe(passed, "Waiting for the verdict")
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  if passed ~= nil then
    hs.message = hs.message .. "; " .. describe(passed, "Passed")
  end
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the operator")
return hs
