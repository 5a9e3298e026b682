/*
 * CRC32C and the folding of page CRCs into region CRCs
 * (include/qemu/crc32c.h).
 */
#include "qemu/osdep.h"
#include "qemu/crc32c.h"

/* The check value every CRC32C implementation publishes. */
static void test_check_value(void)
{
    g_assert_cmphex(crc32c("123456789", 9), ==, 0xe3069283);
    g_assert_cmphex(crc32c_extend(crc32c("1234", 4), "56789", 5), ==,
                    0xe3069283);
    g_assert_cmphex(crc32c("", 0), ==, 0);
}

/* A region of random, zero and one-bit pages, folded in page order. */
static void test_region_fold_equals_direct(void)
{
    const unsigned npages = 512;
    g_autofree uint8_t *region = g_malloc0((size_t)npages *
                                           TARGET_PAGE_SIZE);
    g_autoptr(GRand) rand = g_rand_new_with_seed(12);
    uint32_t r = CRC32C_REGION_INIT;

    for (unsigned p = 0; p < npages; p++) {
        uint8_t *page = region + (size_t)p * TARGET_PAGE_SIZE;

        switch (p % 3) {
        case 0:
            for (unsigned i = 0; i < TARGET_PAGE_SIZE; i++) {
                page[i] = g_rand_int(rand);
            }
            break;
        case 1:
            break;                      /* stays zero */
        default:
            page[g_rand_int_range(rand, 0, TARGET_PAGE_SIZE)] =
                1u << g_rand_int_range(rand, 0, 8);
        }
        r = crc32c_region_add_page(r, crc32c_page_raw(
                                          p % 3 == 1 ? NULL : page));
    }
    g_assert_cmphex(crc32c_region_final(r), ==,
                    crc32c(region, (size_t)npages * TARGET_PAGE_SIZE));
}

/* One flipped bit anywhere changes the region's CRC. */
static void test_region_detects_a_flipped_bit(void)
{
    const unsigned npages = 4;
    g_autofree uint8_t *region = g_malloc0((size_t)npages *
                                           TARGET_PAGE_SIZE);
    uint32_t clean = crc32c(region, (size_t)npages * TARGET_PAGE_SIZE);

    for (size_t bit = 0; bit < (size_t)npages * TARGET_PAGE_SIZE * 8;
         bit += 997) {
        uint32_t r = CRC32C_REGION_INIT;

        region[bit / 8] ^= 1u << (bit % 8);
        for (unsigned p = 0; p < npages; p++) {
            r = crc32c_region_add_page(r, crc32c_page_raw(
                                          region + p * TARGET_PAGE_SIZE));
        }
        g_assert_cmphex(crc32c_region_final(r), !=, clean);
        region[bit / 8] ^= 1u << (bit % 8);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/crc32c/check-value", test_check_value);
    g_test_add_func("/crc32c/region-fold-equals-direct",
                    test_region_fold_equals_direct);
    g_test_add_func("/crc32c/region-detects-a-flipped-bit",
                    test_region_detects_a_flipped_bit);
    return g_test_run();
}
