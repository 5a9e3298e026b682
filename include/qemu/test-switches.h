/*
 * Test-only switches: environment variables that tests set to make
 * snapvm take a path it would not take on this host.  All of them are
 * read here, and only here (util/test-switches.c); docs/devel/testing.md
 * lists them.  None changes what a snapshot holds: each one hides
 * something the host offers or turns a background activity off, so that
 * a test can see the fallback or the effect of one access.
 *
 * Each is read when asked, which product code does once per set-up (a
 * tracker, a restore, a capability check), never on a per-page path.
 * Nothing is cached: unit tests set and unset a switch between the cases
 * of one process.  (SNAPVM_FAULT_INJECT is not a switch of this kind: it
 * arms include/qemu/fault-inject.h, read there before main().)
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

/*
 * SNAPVM_TEST_UFFD_HIDE_FEATURES (a number, 0x... allowed): userfaultfd
 * features masked out of what util/userfaultfd.c reports and opens, so
 * that a test proves a missing feature is refused cleanly or its
 * fallback taken (0 when unset).
 */
uint64_t test_switch_uffd_hidden_features(void);

/*
 * SNAPVM_TEST_NO_PAGEMAP_SCAN (set): the PAGEMAP_SCAN ioctl counts as
 * missing (migration/ram-populated.c), so that the write tracker's other
 * ways of knowing unpopulated pages run on a kernel that has it.
 */
bool test_switch_no_pagemap_scan(void);

#endif
