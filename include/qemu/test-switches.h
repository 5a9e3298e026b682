/*
 * Test-only switches: environment variables that tests set to make
 * snapvm take a path it would not take on this host.  All of them are
 * read here, and only here (util/test-switches.c); docs/devel/testing.md
 * lists them.  None changes what a snapshot holds: each one hides
 * something the host offers or turns a background activity off, so that
 * a test can see the fallback or the effect of one access.
 */
#ifndef QEMU_TEST_SWITCHES_H
#define QEMU_TEST_SWITCHES_H

#include "qemu/osdep.h"

/*
 * SNAPVM_TEST_MAPPED_RAM_NO_WALK (set): a lazy mapped-ram restore fills
 * a chunk only when it is touched, never in the background, so that a
 * test sees exactly which chunks an access brought in
 * (tests/qtest/mapped-ram-test).  Waiting for the block to be whole
 * (mapped_ram_lazy_finish()) still walks.
 */
bool test_switch_mapped_ram_no_walk(void);

#endif
