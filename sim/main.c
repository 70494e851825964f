/* tern-sim SCENARIO [--seed N] [--out DIR] [--store-dir DIR] [--routing R | --compare]. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim.h"

#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

static const char usage[] =
    "usage: tern-sim SCENARIO [--seed N] [--out DIR] [--store-dir DIR]\n"
    "                [--routing static|epidemic | --compare]\n"
    "\n"
    "Runs the scenario (docs/sim.md) in virtual time with the real engine on every node,\n"
    "each with its own store, and writes report.json, flows.csv, links.csv, queue.csv and\n"
    "report.svg into DIR (default tern-sim-out). The same scenario and seed give the same\n"
    "report, byte for byte.\n"
    "\n"
    "  --seed N        seed of every random choice: keys, traffic, links (default 1)\n"
    "  --out DIR       where the report goes (made if missing)\n"
    "  --store-dir DIR where the nodes' stores live during the run (default /dev/shm,\n"
    "                  else $TMPDIR or /tmp); removed at the end\n"
    "  --routing R     every node forwards so, whatever the scenario says: static (the\n"
    "                  routes, as the daemon) or epidemic (flooding, a baseline)\n"
    "  --compare       runs once per routing strategy, each report in DIR/STRATEGY/, and\n"
    "                  sets them side by side in DIR/compare.json and DIR/compare.csv\n";

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *default_store_dir(void)
{
	if (access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	const char *t = getenv("TMPDIR");
	return t && t[0] ? t : "/tmp";
}

static bool parse_seed(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*out = v;
	return true;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static void summary(const struct sim_summary *r, const char *name, const char *out)
{
	printf("%s (%s routing): %" PRIu64 " messages: %" PRIu64 " delivered, %" PRIu64
	       " in transit, %" PRIu64 " expired, %" PRIu64 " lost, %" PRIu64
	       " duplicates; report in %s/\n",
	       name, scenario_routing_name(r->routing), r->submitted, r->delivered, r->in_transit,
	       r->expired, r->lost, r->duplicates, out);
}

/* One run of sc into out; its summary in *sum. 0, or -errno said on stderr. */
static int run_one(const struct scenario *sc, const char *path, uint64_t seed,
		   const char *store_dir, const char *out, struct sim_summary *sum)
{
	struct sim_world w;
	double t0 = wall_s();
	int ret = sim_world_init(&w, sc, seed, store_dir);
	if (ret == 0)
		ret = sim_world_run(&w);
	if (ret == 0) {
		sim_world_finish(&w);
		double wall = wall_s() - t0;
		ret = sim_report_write(&w, out, base_name(path));
		if (ret == 0)
			ret = sim_report_summary(&w, sum);
		if (ret < 0)
			snprintf(w.fatal, sizeof(w.fatal), "%s: cannot write the report: %s", out,
				 strerror(-ret));
		else
			summary(sum, base_name(path), out);
		fprintf(stderr, "tern-sim: %" PRIu64 " events in %.2f s of wall time (%.0f/s)\n",
			w.events, wall, wall > 0 ? (double)w.events / wall : 0.0);
	}
	if (ret < 0)
		fprintf(stderr, "tern-sim: %s: %s\n", path, w.fatal[0] ? w.fatal : strerror(-ret));
	sim_world_free(&w);
	return ret;
}

/* Every strategy in turn on the same scenario and seed, then the comparison. */
static int compare(struct scenario *sc, const char *path, uint64_t seed, const char *store_dir,
		   const char *out)
{
	struct sim_summary runs[SCENARIO_ROUTING_COUNT];
	if (mkdir(out, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "tern-sim: %s: %s\n", out, strerror(errno));
		return -errno;
	}
	for (int r = 0; r < SCENARIO_ROUTING_COUNT; r++) {
		char dir[4096];
		sc->routing = (enum scenario_routing)r;
		if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", out,
				     scenario_routing_name(sc->routing)) >= sizeof(dir)) {
			fprintf(stderr, "tern-sim: %s: %s\n", out, strerror(ENAMETOOLONG));
			return -ENAMETOOLONG;
		}
		int ret = run_one(sc, path, seed, store_dir, dir, &runs[r]);
		if (ret < 0)
			return ret;
	}
	int ret = sim_compare_write(out, base_name(path), seed, runs, SCENARIO_ROUTING_COUNT);
	if (ret < 0) {
		fprintf(stderr, "tern-sim: %s: cannot write the comparison: %s\n", out,
			strerror(-ret));
		return ret;
	}
	printf("%-9s %9s %9s %10s %10s %12s %10s %8s\n", "routing", "delivered", "lost", "p50 h",
	       "p90 h", "bytes", "cost", "queue");
	for (int r = 0; r < SCENARIO_ROUTING_COUNT; r++)
		printf("%-9s %9" PRIu64 " %9" PRIu64 " %10.2f %10.2f %12" PRIu64 " %10.2f %8" PRIu64
		       "\n",
		       scenario_routing_name(runs[r].routing), runs[r].delivered, runs[r].lost,
		       runs[r].p50 / 3600, runs[r].p90 / 3600, runs[r].bytes, runs[r].cost,
		       runs[r].queued_max);
	printf("comparison in %s/compare.json and %s/compare.csv\n", out, out);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *out = "tern-sim-out", *store_dir = NULL, *routing = NULL;
	bool all = false;
	uint64_t seed = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--seed") && has_value) {
			if (!parse_seed(argv[++i], &seed)) {
				fprintf(stderr, "tern-sim: --seed %s: not a number\n", argv[i]);
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--out") && has_value) {
			out = argv[++i];
		} else if (!strcmp(a, "--store-dir") && has_value) {
			store_dir = argv[++i];
		} else if (!strcmp(a, "--routing") && has_value) {
			routing = argv[++i];
		} else if (!strcmp(a, "--compare")) {
			all = true;
		} else if (a[0] == '-' || path) {
			fprintf(stderr, "tern-sim: %s: unknown or incomplete option\n%s", a, usage);
			return EXIT_USAGE;
		} else {
			path = a;
		}
	}
	if (!path) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	enum scenario_routing forced = SCENARIO_ROUTING_STATIC;
	if (routing && scenario_routing_parse(routing, &forced) < 0) {
		fprintf(stderr, "tern-sim: --routing %s: not static or epidemic\n", routing);
		return EXIT_USAGE;
	}
	if (routing && all) {
		fputs(
		    "tern-sim: --routing and --compare: give one (--compare runs every strategy)\n",
		    stderr);
		return EXIT_USAGE;
	}
	if (tern_crypto_init() < 0) {
		fputs("tern-sim: libsodium cannot start\n", stderr);
		return EXIT_FAIL;
	}
	struct scenario *sc = NULL;
	char why[2048];
	if (scenario_load(path, &sc, why, sizeof(why)) < 0) {
		/* One error a line, each naming the file, as a compiler does. */
		for (char *save = NULL, *e = strtok_r(why, "\n", &save); e;
		     e = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "tern-sim: %s: %s\n", path, e);
		return EXIT_FAIL;
	}
	if (routing)
		sc->routing = forced;
	if (!store_dir)
		store_dir = default_store_dir();
	struct sim_summary sum;
	int ret = all ? compare(sc, path, seed, store_dir, out)
		      : run_one(sc, path, seed, store_dir, out, &sum);
	scenario_free(sc);
	return ret < 0 ? EXIT_FAIL : EXIT_OK;
}
