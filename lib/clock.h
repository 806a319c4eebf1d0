/*
 * Deadlines for timed waits: a clock's time now plus some milliseconds, for
 * pthread_cond_timedwait (CLOCK_REALTIME), pthread_rwlock_clockwrlock and poll loops
 * (CLOCK_MONOTONIC); and the milliseconds elapsed since a time.
 */
#ifndef VAULTFS_CLOCK_H
#define VAULTFS_CLOCK_H

#include <time.h>

/* *at = now on clock, plus ms (>= 0) milliseconds. */
static inline void clock_after_ms(clockid_t clock, long ms, struct timespec *at)
{
	clock_gettime(clock, at);
	at->tv_sec += ms / 1000;
	at->tv_nsec += (ms % 1000) * 1000000L;
	if (at->tv_nsec >= 1000000000L) {
		at->tv_sec++;
		at->tv_nsec -= 1000000000L;
	}
}

/* Milliseconds from then to now on clock (negative when then is ahead). */
static inline long long clock_ms_since(clockid_t clock, const struct timespec *then)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (long long)(now.tv_sec - then->tv_sec) * 1000 + (now.tv_nsec - then->tv_nsec) / 1000000;
}

#endif
