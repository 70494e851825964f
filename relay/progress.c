/* A progress line for long transfers: a bar with bytes, rate and time left, on a terminal only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay/cli.h"

/* Redraw at most this often: a terminal over a slow serial console must not be flooded. */
#define REDRAW_MS 200
#define BAR_WIDTH 24

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void progress_start(struct progress *p, const char *verb, uint64_t total)
{
	const char *term = getenv("TERM");
	memset(p, 0, sizeof(*p));
	p->verb = verb;
	p->total = total;
	p->tty = isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
	p->start_ms = mono_ms();
}

uint64_t progress_elapsed_ms(const struct progress *p)
{
	return mono_ms() - p->start_ms;
}

static void draw(struct progress *p, uint64_t now)
{
	uint64_t ms = now - p->start_ms;
	double rate = ms ? (double)p->done * 1000.0 / (double)ms : 0;
	char done[32], total[32], speed[32], eta[32];
	format_size(p->done, done, sizeof(done));
	format_size(p->total, total, sizeof(total));
	format_size((uint64_t)rate, speed, sizeof(speed));
	unsigned fill =
	    p->total ? (unsigned)(BAR_WIDTH *
				  (p->done > p->total ? 1.0 : (double)p->done / (double)p->total))
		     : 0;
	if (rate > 0 && p->total > p->done) {
		uint64_t left = (uint64_t)((double)(p->total - p->done) / rate);
		snprintf(eta, sizeof(eta), "%llu:%02llu", (unsigned long long)(left / 60),
			 (unsigned long long)(left % 60));
	} else {
		snprintf(eta, sizeof(eta), "--:--");
	}
	char bar[BAR_WIDTH + 1];
	memset(bar, '#', fill);
	memset(bar + fill, '.', BAR_WIDTH - fill);
	bar[BAR_WIDTH] = 0;
	/* \033[K clears what a longer earlier line left behind. */
	fprintf(stderr, "\r%s [%s] %s / %s  %s/s  ETA %s\033[K", p->verb, bar, done, total, speed,
		eta);
	fflush(stderr);
	p->last_ms = now;
	p->drawn = true;
}

void progress_add(struct progress *p, uint64_t bytes)
{
	p->done += bytes;
	if (!p->tty)
		return;
	uint64_t now = mono_ms();
	if (!p->drawn || now - p->last_ms >= REDRAW_MS)
		draw(p, now);
}

void progress_interrupt(struct progress *p)
{
	if (p->tty && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false; /* the next progress_add draws it again, below the message */
	}
}

void progress_end(struct progress *p)
{
	if (p->tty && p->drawn) {
		draw(p, mono_ms());
		fputc('\n', stderr);
	}
	p->drawn = false;
}
