/* tern-sim's chart: report.svg, the latency CDF and the queues over time, for a person to open. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim/sim.h"

#define W	   720
#define H	   300 /* one panel */
#define LEFT	   70
#define RIGHT	   20
#define TOP	   40
#define BOTTOM	   50
#define PLOT_W	   (W - LEFT - RIGHT)
#define PLOT_H	   (H - TOP - BOTTOM)
#define SERIES_MAX 6 /* queues drawn one by one: the biggest; the rest are in the total */

static const char *const colours[SERIES_MAX + 1] = {"#222",    "#1f77b4", "#d62728", "#2ca02c",
						    "#9467bd", "#ff7f0e", "#8c564b"};

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return a < b ? -1 : a > b;
}

/* Hours or days, whichever reads better for the span. */
static void time_unit(double span_s, double *div, const char **unit)
{
	if (span_s >= 3 * 86400.0) {
		*div = 86400.0;
		*unit = "days";
	} else if (span_s >= 3 * 3600.0) {
		*div = 3600.0;
		*unit = "hours";
	} else if (span_s >= 180.0) {
		*div = 60.0;
		*unit = "minutes";
	} else {
		*div = 1.0;
		*unit = "seconds";
	}
}

static void axes(FILE *f, int y0, const char *title, double xmax, const char *xunit, double ymax,
		 const char *ylabel)
{
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"15\">%s</text>\n", LEFT, y0 + 24, title);
	fprintf(f,
		"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
		"stroke=\"#999\"/>\n",
		LEFT, y0 + TOP, PLOT_W, PLOT_H);
	for (int i = 0; i <= 4; i++) {
		double fx = i / 4.0;
		int x = LEFT + (int)(fx * PLOT_W), y = y0 + TOP + PLOT_H - (int)(fx * PLOT_H);
		fprintf(
		    f,
		    "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.3g</text>\n",
		    x, y0 + TOP + PLOT_H + 16, fx * xmax);
		fprintf(
		    f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n",
		    LEFT - 6, y + 4, fx * ymax);
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>\n",
			LEFT, y, LEFT + PLOT_W, y);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
		LEFT + PLOT_W / 2, y0 + H - 12, xunit);
	fprintf(f,
		"<text x=\"16\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" "
		"transform=\"rotate(-90 16 %d)\">%s</text>\n",
		y0 + TOP + PLOT_H / 2, y0 + TOP + PLOT_H / 2, ylabel);
}

static double px(double v, double max)
{
	return LEFT + (max > 0 ? v / max : 0) * PLOT_W;
}

static double py(int y0, double v, double max)
{
	return y0 + TOP + PLOT_H - (max > 0 ? v / max : 0) * PLOT_H;
}

/* The share of all messages made that were delivered within x: it ends at the delivery ratio. */
static void latency_cdf(FILE *f, const struct sim_world *w, int64_t *v)
{
	size_t n = 0;
	for (size_t i = 0; i < w->n_msgs; i++)
		if (w->msgs[i].fate == FATE_DELIVERED)
			v[n++] = w->msgs[i].delivered_at - w->msgs[i].sent_at;
	qsort(v, n, sizeof(*v), cmp_i64);
	double max_s = n ? (double)v[n - 1] / 1e6 : 1.0, div;
	const char *unit;
	time_unit(max_s, &div, &unit);
	double xmax = max_s / div;
	axes(f, 0, "Delivery latency (share of messages made, delivered within)", xmax, unit, 1.0,
	     "share delivered");
	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%.1f,%.1f",
		colours[1], px(0, xmax), py(0, 0, 1));
	/* At most one point per pixel column: a million deliveries still make a small file. */
	double last_x = -1;
	for (size_t i = 0; i < n; i++) {
		double x = px((double)v[i] / 1e6 / div, xmax);
		if (x - last_x < 1 && i + 1 < n)
			continue;
		last_x = x;
		fprintf(f, " %.1f,%.1f", x, py(0, (double)(i + 1) / (double)w->n_msgs, 1));
	}
	fprintf(f, "\"/>\n");
}

static void queue_lines(FILE *f, const struct sim_world *w, int y0)
{
	const size_t nn = w->sc->n_nodes;
	size_t pick[SERIES_MAX];
	size_t n_pick = 0;
	/* The nodes with the largest queue at any sample, biggest first. */
	for (size_t k = 0; k < SERIES_MAX && k < nn; k++) {
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < nn; i++) {
			bool taken = false;
			for (size_t j = 0; j < n_pick; j++)
				taken |= pick[j] == i;
			if (!taken && (best == SIZE_MAX ||
				       w->nodes[i].queued_max > w->nodes[best].queued_max))
				best = i;
		}
		if (best == SIZE_MAX || w->nodes[best].queued_max == 0)
			break;
		pick[n_pick++] = best;
	}
	double ymax = 1, div;
	for (size_t s = 0; s < w->n_samples; s++) {
		uint64_t total = 0;
		for (size_t i = 0; i < nn; i++)
			total += w->samples[s].queued[i];
		if ((double)total > ymax)
			ymax = (double)total;
	}
	const char *unit;
	double span = (double)w->sc->duration_us / 1e6;
	time_unit(span, &div, &unit);
	axes(f, y0, "Bundles queued over time (all nodes, and the largest queues)", span / div,
	     unit, ymax, "bundles queued");
	for (size_t k = 0; k <= n_pick; k++) {
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"",
			colours[k], k ? "1.5" : "2");
		for (size_t s = 0; s < w->n_samples; s++) {
			uint64_t q = 0;
			if (k)
				q = w->samples[s].queued[pick[k - 1]];
			else
				for (size_t i = 0; i < nn; i++)
					q += w->samples[s].queued[i];
			double t = (double)w->samples[s].at / 1e6 / div;
			fprintf(f, "%s%.1f,%.1f", s ? " " : "", px(t, span / div),
				py(y0, (double)q, ymax));
		}
		fprintf(f, "\"/>\n");
		fprintf(f, "<text x=\"%d\" y=\"%zu\" font-size=\"11\" fill=\"%s\">%s</text>\n",
			LEFT + PLOT_W - 110, (size_t)y0 + TOP + 14 + 14 * k, colours[k],
			k ? w->sc->nodes[pick[k - 1]].name : "all nodes");
	}
}

void sim_report_svg(FILE *f, const struct sim_world *w, int64_t *scratch)
{
	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" "
		"fill=\"white\"/>\n",
		W, 2 * H);
	latency_cdf(f, w, scratch);
	queue_lines(f, w, H);
	fprintf(f, "</svg>\n");
}
