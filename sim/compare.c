/* tern-sim --compare: the same scenario and seed under each routing strategy, side by side. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim/sim.h"

static double ratio(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : 0.0;
}

static void write_json(FILE *f, const char *scenario, uint64_t seed, const struct sim_summary *r,
		       size_t n)
{
	fprintf(f, "{\n  \"scenario\": ");
	sim_json_string(f, scenario);
	fprintf(f, ",\n  \"seed\": %" PRIu64 ",\n  \"runs\": [", seed);
	for (size_t i = 0; i < n; i++) {
		fprintf(
		    f,
		    "%s\n    {\"routing\": \"%s\", \"submitted\": %" PRIu64
		    ", \"delivered\": %" PRIu64 ", \"delivery_ratio\": %.4f"
		    ", \"duplicates\": %" PRIu64 ", \"in_transit\": %" PRIu64
		    ", \"expired\": %" PRIu64 ", \"lost\": %" PRIu64
		    ", \"latency_s\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}"
		    ", \"bytes\": %" PRIu64 ", \"cost\": %.3f, \"queued_max\": %" PRIu64
		    ", \"events\": %" PRIu64 "}",
		    i ? "," : "", scenario_routing_name(r[i].routing), r[i].submitted,
		    r[i].delivered, ratio(r[i].delivered, r[i].submitted), r[i].duplicates,
		    r[i].in_transit, r[i].expired, r[i].lost, r[i].p50, r[i].p90, r[i].p99,
		    r[i].max, r[i].bytes, r[i].cost, r[i].queued_max, r[i].events);
	}
	fprintf(f, "\n  ]\n}\n");
}

static void write_csv(FILE *f, const struct sim_summary *r, size_t n)
{
	fprintf(f, "routing,submitted,delivered,delivery_ratio,duplicates,in_transit,expired,lost,"
		   "p50_s,p90_s,p99_s,max_s,bytes,cost,queued_max,events\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f,
			"%s,%" PRIu64 ",%" PRIu64 ",%.4f,%" PRIu64 ",%" PRIu64 ",%" PRIu64
			",%" PRIu64 ",%.3f,%.3f,%.3f,%.3f,%" PRIu64 ",%.3f,%" PRIu64 ",%" PRIu64
			"\n",
			scenario_routing_name(r[i].routing), r[i].submitted, r[i].delivered,
			ratio(r[i].delivered, r[i].submitted), r[i].duplicates, r[i].in_transit,
			r[i].expired, r[i].lost, r[i].p50, r[i].p90, r[i].p99, r[i].max, r[i].bytes,
			r[i].cost, r[i].queued_max, r[i].events);
}

int sim_compare_write(const char *dir, const char *scenario, uint64_t seed,
		      const struct sim_summary *runs, size_t n)
{
	static const char *const names[] = {"compare.json", "compare.csv"};
	int ret = 0;
	for (int k = 0; k < 2 && ret == 0; k++) {
		char path[4096];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[k]) >= sizeof(path))
			return -ENAMETOOLONG;
		FILE *f = fopen(path, "w");
		if (!f)
			return -errno;
		if (k == 0)
			write_json(f, scenario, seed, runs, n);
		else
			write_csv(f, runs, n);
		if (ferror(f))
			ret = -EIO;
		if (fclose(f) != 0 && ret == 0)
			ret = -errno;
	}
	return ret;
}
