/*
 * Deadlines for timed waits: a clock's time now plus some milliseconds, for
 * pthread_cond_timedwait (CLOCK_REALTIME), pthread_rwlock_clockwrlock and poll loops
 * (CLOCK_MONOTONIC).
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

#endif
