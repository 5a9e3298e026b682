/*
 * Test-only switches (include/qemu/test-switches.h).
 */
#include "qemu/osdep.h"
#include "qemu/test-switches.h"

bool test_switch_mapped_ram_no_walk(void)
{
    return g_getenv("SNAPVM_TEST_MAPPED_RAM_NO_WALK") != NULL;
}

uint64_t test_switch_uffd_hidden_features(void)
{
    const char *mask = g_getenv("SNAPVM_TEST_UFFD_HIDE_FEATURES");

    return mask ? g_ascii_strtoull(mask, NULL, 0) : 0;
}

bool test_switch_no_pagemap_scan(void)
{
    return g_getenv("SNAPVM_TEST_NO_PAGEMAP_SCAN") != NULL;
}
