/* A tern-sim scenario: nodes, links and their contact plans, routes, traffic, crashes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * docs/sim.md gives the text format. Times are virtual microseconds from the start of the
 * run, which is 00:00 UTC of a day, so the daily windows of tern.conf line up with it.
 * Names are indexes into the arrays below.
 */

#define SCENARIO_NAME_MAX    31
#define SCENARIO_WINDOWS_MAX 8
#define SCENARIO_LINE_MAX    1024

struct scenario_node {
	char name[SCENARIO_NAME_MAX + 1];
};

enum scenario_plan {
	PLAN_ALWAYS,  /* up from the start to the end */
	PLAN_WINDOWS, /* daily windows and explicit contacts */
	PLAN_RANDOM,  /* exponential on and off periods */
};

/* [start, end) in µs after the start of the run. */
struct scenario_span {
	int64_t start, end;
};

/* What carries a link's bytes: a TCP-like connection, or a serial line with its ARQ. */
enum scenario_link_kind {
	SCENARIO_LINK_TCP = 0,
	SCENARIO_LINK_SERIAL,
};

/* The bounds of a serial link, those of the line model (sim/line_model.h). */
#define SCENARIO_SERIAL_RATE_MIN 50ull
#define SCENARIO_SERIAL_RATE_MAX 4000000ull
#define SCENARIO_SERIAL_BER_MAX	 0.01

struct scenario_link {
	size_t a, b; /* a dials b (serial: the lower node number calls, as the daemon) */
	enum scenario_link_kind kind;
	uint64_t rate_bps;   /* each way; serial: the line's bits per second, 8N1 */
	int64_t latency_us;  /* one way; serial: whole milliseconds */
	double ber;	     /* serial: each data bit flipped with this probability */
	double cost_per_mib; /* for the report: cost units per MiB carried, both ways */
	enum scenario_plan plan;
	/* PLAN_WINDOWS: daily [start, end) in µs after 00:00 UTC (end < start wraps). */
	struct scenario_span windows[SCENARIO_WINDOWS_MAX];
	size_t n_windows;
	struct scenario_span *contacts; /* explicit contacts, sorted by start */
	size_t n_contacts;
	int64_t mean_up_us, mean_down_us; /* PLAN_RANDOM */
};

struct scenario_route {
	size_t node;
	bool is_default;
	size_t dest; /* unless is_default */
	size_t via;
	unsigned line; /* where it was written, for an error found at the end */
};

enum scenario_arrival {
	ARRIVE_EVERY,	/* one message each period */
	ARRIVE_POISSON, /* exponential gaps, mean period */
};

struct scenario_flow {
	size_t from, to;
	enum scenario_arrival arrival;
	int64_t period_us;
	uint64_t size_min, size_max; /* plaintext bytes, uniform in [min, max] */
	int priority;		     /* enum store_priority */
	int64_t lifetime_us;
	int64_t start_us, stop_us; /* messages are made in [start, stop) */
};

struct scenario_crash {
	size_t node;
	int64_t at_us, down_us;
	unsigned line;
};

/* A stick that travels a route on a schedule (docs/sim.md, "Couriers"). */
#define SCENARIO_STOPS_MAX	  8
#define SCENARIO_COURIER_MIN_SIZE (1ull << 20)

struct scenario_courier {
	char name[SCENARIO_NAME_MAX + 1];
	size_t stops[SCENARIO_STOPS_MAX]; /* visited in this order, then back to the first */
	size_t n_stops;			  /* 2 or more */
	int64_t every_us;		  /* a trip starts at the first stop this often */
	int64_t at_us;			  /* the first trip's start */
	int64_t travel_us;		  /* from one stop to the next, and back from the last */
	uint64_t capacity;		  /* bytes the stick holds */
	double cost_per_trip;		  /* for the report */
};

/* When the courier's trip number trip reaches stop i (the first stop: it starts there). */
int64_t scenario_courier_visit_at(const struct scenario_courier *c, uint64_t trip, size_t i);

/* How every node forwards (relay/node.h, enum node_routing, in the same order). */
enum scenario_routing {
	SCENARIO_ROUTING_STATIC = 0,
	SCENARIO_ROUTING_EPIDEMIC,
	SCENARIO_ROUTING_COUNT
};

/* "static", "epidemic"; NULL for a value out of range. */
const char *scenario_routing_name(enum scenario_routing r);
/* The strategy of that name: 0, or -EINVAL. */
int scenario_routing_parse(const char *name, enum scenario_routing *out);

struct scenario {
	int64_t duration_us;
	enum scenario_routing routing;
	int64_t sample_us; /* queue sizes recorded this often */
	struct scenario_node *nodes;
	size_t n_nodes;
	struct scenario_link *links;
	size_t n_links;
	struct scenario_route *routes;
	size_t n_routes;
	struct scenario_flow *flows;
	size_t n_flows;
	struct scenario_crash *crashes;
	size_t n_crashes;
	struct scenario_courier *couriers;
	size_t n_couriers;
};

struct scenario_reader;

/* Push-style, so the caller owns the I/O and a fuzzer can drive it. 0 or -ENOMEM. */
int scenario_read_init(struct scenario_reader **out);
/*
 * One line (without its newline; len bytes, no NUL needed). 0, or -EINVAL when the line is
 * wrong: the error is kept with its line number and reading goes on, so that one run
 * names every error. -ENOMEM.
 */
int scenario_read_line(struct scenario_reader *r, const uint8_t *line, size_t len);
/*
 * Checks the whole (a duration, at least one node, routes naming links) and hands the
 * scenario over: 0 and *out, or -EINVAL with the errors in r (scenario_read_errors).
 * Frees nothing: call scenario_read_free after.
 */
int scenario_read_finish(struct scenario_reader *r, struct scenario **out);
/* Each error as "line N: what is wrong", one per line, NUL-terminated; "" if none. */
const char *scenario_read_errors(const struct scenario_reader *r);
void scenario_read_free(struct scenario_reader *r);

/* Reads a scenario file. 0; -errno with why filled ("line 3: ..." or the file's error). */
int scenario_load(const char *path, struct scenario **out, char *why, size_t whylen);
void scenario_free(struct scenario *s);

/* True if nodes a and b are linked, or stops of one courier's route. */
bool scenario_adjacent(const struct scenario *s, size_t a, size_t b);

/* True if link l is up at t by its plan (PLAN_RANDOM: not decided here). */
bool scenario_link_planned_up(const struct scenario_link *l, int64_t t);
/* The next time after t at which link l's plan changes (up to down or back); INT64_MAX none. */
int64_t scenario_link_next_change(const struct scenario_link *l, int64_t t);
