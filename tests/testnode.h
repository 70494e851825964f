/*
 * What the in-process tests and benchmarks of several nodes share (test_link, test_api,
 * the faults suite's C tests, bench_queue): a fixed clock, and a node as another's contact
 * or peer.
 */
#pragma once

#include "relay/node.h"

/* 2027-01-15 by the wall clock, 1 s after a boot with id 1: trusted, and far from 0. */
void testnode_clock(struct store_clock *c);
/* n's public identity as a contact named name. */
void testnode_as_contact(const struct node *n, const char *name, struct store_contact *c);
/* n's public identity as a peer named name, over TCP. */
void testnode_as_peer(const struct node *n, const char *name, struct store_peer *p);
