#include "controller/async_policy.h"

/* base × 2^exp, saturating at `cap` (exp may be large after hours of throttling). */
static int64_t backoff(int64_t base, int64_t exp, int64_t cap)
{
    int64_t d = base;
    for (int64_t i = 0; i < exp && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

bool ef_async_policy_expired(const struct ef_async_policy *p, int64_t created_ms, int64_t now_ms)
{
    return now_ms - created_ms >= p->max_age_ms;
}

void ef_async_policy_after_failure(const struct ef_async_policy *p, enum ef_async_failure kind,
                                   int64_t attempts, int64_t refusals, int64_t created_ms,
                                   int64_t now_ms, struct ef_async_step *ret_step)
{
    struct ef_async_step step = {0};
    if (kind == EF_ASYNC_FUNCTION_ERROR && attempts >= p->max_attempts) {
        step.dead_letter = true;
        step.condition = EF_ASYNC_RETRIES_EXHAUSTED;
        *ret_step = step;
        return;
    }
    if (kind == EF_ASYNC_REFUSED && p->max_refusals > 0 && refusals > p->max_refusals) {
        step.dead_letter = true;
        step.condition = EF_ASYNC_RETRIES_EXHAUSTED;
        *ret_step = step;
        return;
    }
    int64_t delay;
    if (kind == EF_ASYNC_FUNCTION_ERROR)
        /* Retry k (k = attempts) waits base × 2^(k-1); a day caps absurd configurations. */
        delay = backoff(p->retry_delay_ms, attempts > 0 ? attempts - 1 : 0, 24 * 3600 * 1000LL);
    else
        delay = backoff(EF_ASYNC_THROTTLE_BACKOFF_MIN_MS, refusals > 0 ? refusals - 1 : 0,
                        EF_ASYNC_THROTTLE_BACKOFF_MAX_MS);
    step.next_attempt_ms = now_ms + delay;
    if (step.next_attempt_ms - created_ms >= p->max_age_ms) {
        step.dead_letter = true;
        step.condition = EF_ASYNC_EVENT_AGE_EXCEEDED;
        step.next_attempt_ms = 0;
    }
    *ret_step = step;
}
