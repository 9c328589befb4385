# The fault rates the test command runs DynamoDB through (sourced by
# tests/faults/run.sh, which adds calls never answered, and by
# scripts/test.sh for the contract pass): 1 % of calls throttled, 1 % of
# transactions cancelled for a conflict, 0.5 % failing with a 500 and 0.2 %
# with a 500 after the write is applied, up to 2 ms of latency, 20 % of
# index answers stale by up to a second (tests/faults/proxy.py).
# shellcheck disable=SC2034
fault_rates=(--throttle 0.01 --conflict 0.01 --error 0.005 --error-after 0.002 --latency 2 --stale 0.2 --stale-age 1.0)
