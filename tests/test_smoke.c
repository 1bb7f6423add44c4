#include "test_support.h"
#include "attn/attn.h"
static void t(void **s) { (void)s; assert_string_equal(attn_version(), ATTN_VERSION_STRING); }
int main(void) { const struct CMUnitTest tests[] = {cmocka_unit_test(t)}; return cmocka_run_group_tests(tests, NULL, NULL); }
