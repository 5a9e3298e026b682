/*
 * Test-only switches (include/qemu/test-switches.h).
 */
#include "qemu/osdep.h"
#include "qemu/test-switches.h"

bool test_switch_mapped_ram_no_walk(void)
{
    return g_getenv("SNAPVM_TEST_MAPPED_RAM_NO_WALK") != NULL;
}
