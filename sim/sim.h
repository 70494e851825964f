/* tern-sim's world: virtual time, events, the simulated nodes and links (internal to sim/). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relay/link.h"
#include "relay/node.h"
#include "sim/line_model.h"
#include "sim/rng.h"
#include "sim/scenario.h"
#include "transports/serial.h"
#include "transports/tcp.h"

/* ---- events.c: the event queue and the seeded generators ----------------------------- */

enum sim_event_kind {
	EV_END,
	EV_SAMPLE,
	EV_LINK_CHANGE, /* a link's plan may have changed: a, up (PLAN_RANDOM) */
	EV_REDIAL,	/* a link's session ended while it stays up: dial again */
	EV_DATA,	/* bytes reach one end of a connection: a link, conn generation, end */
	EV_TIMER,	/* a session's deadline: link, conn generation, end, timer generation */
	EV_TRAFFIC,	/* a flow makes its next message */
	EV_CRASH,
	EV_RESTART,
	EV_LINE,    /* a serial link's line, ARQs or sessions are due: link, conn gen, line gen */
	EV_COURIER, /* a courier's stick reaches its next stop: courier */
};

struct sim_event {
	int64_t at;
	uint64_t seq; /* ties break in order of scheduling: the run is deterministic */
	enum sim_event_kind kind;
	size_t a; /* link, flow or node index */
	uint64_t gen, gen2;
	int end;
	uint8_t *buf; /* EV_DATA: owned by the event */
	size_t len;
};

struct sim_queue {
	struct sim_event *ev;
	size_t n, cap;
	uint64_t seq;
};

/* 0 or -ENOMEM (the event's buffer is then freed). */
int sim_queue_push(struct sim_queue *q, struct sim_event ev);
/* The earliest event; false if none. */
bool sim_queue_pop(struct sim_queue *q, struct sim_event *out);
void sim_queue_free(struct sim_queue *q);

/* ---- the world ------------------------------------------------------------------------ */

struct sim_world;
struct sim_link;

struct sim_end {
	struct sim_world *w;
	struct sim_link *l;
	int side; /* 0 on node a (the dialer), 1 on node b */
	struct tcp *tcp;
	struct link_session *ls;
	struct serial_arq *arq; /* a serial link's: the stream the session rides on */
	uint64_t inflight;	/* bytes sent toward the other end, not yet arrived */
	int64_t line_free;	/* when this direction of the line has sent what it was given */
	uint64_t timer_gen;	/* only the latest timer event counts */
	int64_t timer_at;	/* INT64_MAX none */
	uint64_t received_seen;
};

struct sim_link {
	const struct scenario_link *sl;
	size_t index;
	bool planned_up;    /* by its plan (windows, contacts, random process) */
	struct sim_rng rng; /* PLAN_RANDOM */
	bool connected;
	uint64_t gen;	       /* connection generation: events of an older one are dropped */
	struct sim_end end[2]; /* end 0 on node a (the dialer), end 1 on node b */
	bool redial_pending;
	unsigned failures; /* sessions in a row that ended badly: the redial backs off */
	/* A serial link (net_serial.c): the line each way, made anew for each connection. */
	struct line_dir line[2]; /* line[i] carries what end i sends */
	struct sim_rng line_rng; /* each connection's damage seed and stream nonces */
	int caller;		 /* the end that calls: the lower node number, as the daemon */
	int64_t gulp_us;	 /* the line's bytes go and come in gulps this long */
	uint64_t line_gen;	 /* only the latest EV_LINE counts */
	int64_t line_at;	 /* when it is due; INT64_MAX none */
	bool busy, again;	 /* in service; asked for again meanwhile */
	/* report */
	uint64_t bytes[2]; /* bytes sent by end 0 and by end 1 (what reached the line) */
	/* Serial: the two ARQs' counters and the line's damage, over every connection. */
	uint64_t frames_out, frames_resent, frames_in, frames_bad, bits_flipped;
	uint64_t sessions, session_errors;
	int64_t up_since, up_total;
	char last_error[96];
};

struct sim_node {
	const struct scenario_node *sn;
	size_t index;
	struct node n;
	struct identity_public pub;
	char path[512];
	bool up;
	unsigned boots;
	int64_t boot_at;
	int64_t delivered_seen; /* rowid of the last delivered bundle looked at */
	size_t *links;		/* the links this node is an end of */
	size_t n_links;
	/* report */
	unsigned crashes;
	uint64_t queued_max, queued_end, expired;
};

/* What a courier did at one stop of its route, over the run. */
struct sim_stop {
	uint64_t visits, missed;	 /* missed: the node was down when the stick came */
	uint64_t bundles_out, bytes_out; /* bundle files the stop's exports wrote */
	uint64_t taken_in;		 /* bundles its imports stored: delivered or to forward */
	uint64_t visits_in;		 /* visits whose import took any in */
	int64_t first_in, last_in;	 /* when the first and last of those were */
	uint64_t released;		 /* its bundles that custody receipts released */
	uint64_t receipted;		 /* bundles it wrote custody receipts for */
};

/* A sneakernet courier (courier.c): a stick directory in the run's, on its route. */
struct sim_courier {
	const struct scenario_courier *sc;
	char dir[600];
	uint64_t trip; /* of the next visit */
	size_t stop;
	/* report */
	uint64_t trips, full_visits, did_not_fit, rejected, problems;
	uint64_t used_max; /* the most the stick held after a visit, in clusters */
	struct sim_stop stops[SCENARIO_STOPS_MAX];
};

enum sim_fate {
	FATE_DELIVERED,
	FATE_IN_TRANSIT, /* in some store at the end, its lifetime not over */
	FATE_EXPIRED,	 /* its lifetime ended before it was delivered */
	FATE_LOST,	 /* none of the above: a broken promise */
};

/* One message the simulator made; a table keyed by its bundle id finds it at delivery. */
struct sim_msg {
	uint8_t bundle_id[32];
	size_t flow;
	int64_t sent_at, lifetime_us;
	int64_t delivered_at; /* -1 until delivered */
	unsigned deliveries;
	enum sim_fate fate; /* set by sim_world_finish */
};

struct sim_sample {
	int64_t at;
	uint64_t *queued; /* per node */
};

struct sim_world {
	const struct scenario *sc;
	uint64_t seed;
	char store_dir[400];
	int64_t now;
	uint64_t events;
	struct sim_queue q;
	struct sim_node *nodes;
	struct sim_link *links;
	struct sim_courier *couriers;
	struct sim_rng *flow_rng;
	uint64_t *flow_seq;
	struct sim_msg *msgs;
	size_t n_msgs, cap_msgs;
	size_t *msg_table; /* open addressing over bundle ids: index + 1, 0 empty */
	size_t table_cap;
	struct sim_sample *samples;
	size_t n_samples, cap_samples;
	uint64_t submit_errors;	     /* node_submit refused a message (a simulator fault) */
	uint64_t sender_down;	     /* messages not made: their sender was down */
	uint64_t unknown_deliveries; /* delivered bundles that are none of our messages */
	uint64_t misdelivered;	     /* a message delivered on a node it was not sent to */
	uint64_t hop_limited;	     /* bundles dropped by an engine: hop limit */
	uint64_t sent_state[4];	     /* couriers: the senders' sent rows at the end, by state */
	struct sim_rng key_rng;	     /* every key, nonce and random byte of the engines */
	char run_dir[512];	     /* the stores of this run, removed at the end */
	char fatal[256];	     /* a simulator fault that stopped the run; "" if none */
};

/* world.c */
/* Makes every node (store in store_dir, identities from seed) and schedules the plan. */
int sim_world_init(struct sim_world *w, const struct scenario *sc, uint64_t seed,
		   const char *store_dir);
/* Runs to the end of the scenario. 0, or -errno with w->fatal saying why. */
int sim_world_run(struct sim_world *w);
/* After the run: the fate of every message. */
void sim_world_finish(struct sim_world *w);
void sim_world_free(struct sim_world *w);
/* Points n->now at the world's time (each node's own boot clock). */
void sim_node_clock(struct sim_world *w, struct sim_node *nd);
/* Looks at what node nd delivered since the last look: finds each message and times it. */
void sim_node_deliveries(struct sim_world *w, struct sim_node *nd);
/* Node nd as the other end of a link knows it. */
void sim_node_as_peer(const struct sim_node *nd, struct store_peer *p);

/* net.c */
/* Brings link l's connection up or down to match its plan and its nodes. */
int sim_link_update(struct sim_world *w, struct sim_link *l);
int sim_link_data(struct sim_world *w, const struct sim_event *ev);
int sim_link_timer(struct sim_world *w, const struct sim_event *ev);
/* Node nd stored something new: its sessions look for bundles to offer, and offer them. */
int sim_node_kick(struct sim_world *w, struct sim_node *nd);
/* Drops the connection (no words: the link or a node went away). */
void sim_link_drop(struct sim_world *w, struct sim_link *l);

/* net.c, for net_serial.c: a session's records, its start, its end, what it stored. */
int sim_end_record(void *ctx, const uint8_t *rec, size_t len);
int sim_end_start_session(struct sim_world *w, struct sim_end *e);
/* The answering end of link l knows one caller: the node at the other end. */
int sim_end_lookup(void *ctx, const uint8_t box_pk[static 32], struct identity_public *peer);
/* Ends the connection (err -ESHUTDOWN: a goodbye; else an error) and schedules the redial. */
int sim_link_end_session(struct sim_world *w, struct sim_link *l, int side, int err);
/* After end side's node stored something: delivered messages are timed, sessions offer. */
int sim_link_stored_new(struct sim_world *w, struct sim_link *l, int side);

/* net_serial.c: serial links, the daemon's serial stack over the line model. */
/* Connects link l: a line each way, an ARQ and a Noise transport at each end. */
int sim_serial_connect(struct sim_world *w, struct sim_link *l);
/* Moves what link l's ends and line have to move now, and says when to look again. */
int sim_serial_service(struct sim_world *w, struct sim_link *l);
int sim_serial_event(struct sim_world *w, const struct sim_event *ev);
/* Frees the lines and ARQs of link l, keeping their counters for the report. */
void sim_serial_free(struct sim_link *l);

/* courier.c: sneakernet couriers, the real export and import of relay/stick_*.c. */
/* Makes each courier's stick (a directory in the run's) and schedules its first visit. */
int sim_couriers_init(struct sim_world *w);
/* The stick reaches its next stop: import there, then export for the other stops. */
int sim_courier_visit(struct sim_world *w, size_t c);
/* A courier's cost over the run, for the report. */
double sim_courier_cost(const struct sim_courier *c);

/* report.c: writes report.json, flows.csv, links.csv, queue.csv and report.svg into dir. */
int sim_report_write(const struct sim_world *w, const char *dir, const char *scenario_name);

/* report.c: s as a JSON string, quoted and escaped. */
void sim_json_string(FILE *f, const char *s);

/* A run in a line: what tern-sim --compare sets side by side. */
struct sim_summary {
	enum scenario_routing routing;
	uint64_t submitted, delivered, duplicates, in_transit, expired, lost;
	double p50, p90, p99, max; /* latency, seconds */
	uint64_t bytes;		   /* over every link, both ways */
	double cost;
	uint64_t queued_max; /* the longest queue of any node at any sample */
	uint64_t events;
};
/* report.c: the summary of a finished run. 0 or -ENOMEM. */
int sim_report_summary(const struct sim_world *w, struct sim_summary *out);
/* compare.c: writes compare.json and compare.csv into dir, one entry per run. */
int sim_compare_write(const char *dir, const char *scenario_name, uint64_t seed,
		      const struct sim_summary *runs, size_t n);
/* chart.c: the latency CDF and the queues over time; scratch has room for every message. */
void sim_report_svg(FILE *f, const struct sim_world *w, int64_t *scratch);
