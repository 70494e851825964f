/* A minimal test harness: CHECK records a failure and goes on; main returns the count. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures __attribute__((unused));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__,      \
				__LINE__, #a, _a, #b, _b);                                         \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#define TEST_MAIN_END()                                                                            \
	do {                                                                                       \
		if (test_failures)                                                                 \
			fprintf(stderr, "%d check(s) failed\n", test_failures);                    \
		return test_failures ? 1 : 0;                                                      \
	} while (0)
