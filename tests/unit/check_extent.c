/*
 * Hole lists: merging, splitting, trimming, and the queries the read path relies on.
 * A wrong answer here would read real data as zeros or zeros as real data.
 */
#include <stdlib.h>

#include "lib/extent.h"
#include "tests/harness.h"

static struct meta_inode inode;

static void setup(void)
{
	memset(&inode, 0, sizeof(inode));
}

static void teardown(void)
{
	meta_inode_release(&inode);
}

static void expect(const uint64_t *pairs, uint32_t count)
{
	ck_assert_uint_eq(inode.hole_count, count);
	for (uint32_t i = 0; i < count; i++) {
		ck_assert_uint_eq(inode.holes[i].start, pairs[2 * i]);
		ck_assert_uint_eq(inode.holes[i].end, pairs[2 * i + 1]);
	}
}

START_TEST(add_merges_touching_and_overlapping)
{
	ck_assert_int_eq(extent_add(&inode, 10, 20), 0);
	ck_assert_int_eq(extent_add(&inode, 30, 40), 0);
	expect((uint64_t[]){ 10, 20, 30, 40 }, 2);
	ck_assert_int_eq(extent_add(&inode, 20, 25), 0);   /* touches the first */
	expect((uint64_t[]){ 10, 25, 30, 40 }, 2);
	ck_assert_int_eq(extent_add(&inode, 24, 31), 0);   /* bridges both */
	expect((uint64_t[]){ 10, 40 }, 1);
	ck_assert_int_eq(extent_add(&inode, 0, 5), 0);
	ck_assert_int_eq(extent_add(&inode, 50, 60), 0);
	expect((uint64_t[]){ 0, 5, 10, 40, 50, 60 }, 3);
	ck_assert_int_eq(extent_add(&inode, 7, 7), 0);     /* empty: no change */
	expect((uint64_t[]){ 0, 5, 10, 40, 50, 60 }, 3);
}
END_TEST

START_TEST(remove_splits_trims_and_drops)
{
	ck_assert_int_eq(extent_add(&inode, 0, 100), 0);
	ck_assert_int_eq(extent_remove(&inode, 40, 50), 0);
	expect((uint64_t[]){ 0, 40, 50, 100 }, 2);
	ck_assert_int_eq(extent_remove(&inode, 0, 1), 0);
	expect((uint64_t[]){ 1, 40, 50, 100 }, 2);
	ck_assert_int_eq(extent_remove(&inode, 30, 60), 0);   /* spans two holes */
	expect((uint64_t[]){ 1, 30, 60, 100 }, 2);
	ck_assert_int_eq(extent_remove(&inode, 80, UINT64_MAX), 0);  /* truncation */
	expect((uint64_t[]){ 1, 30, 60, 80 }, 2);
	ck_assert_int_eq(extent_remove(&inode, 0, UINT64_MAX), 0);
	expect(NULL, 0);
}
END_TEST

START_TEST(queries_answer_block_by_block)
{
	ck_assert_int_eq(extent_add(&inode, 2, 4), 0);
	ck_assert_int_eq(extent_add(&inode, 8, 9), 0);
	bool holes[12] = { 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0 };
	for (uint64_t i = 0; i < 12; i++)
		ck_assert_int_eq(extent_is_hole(&inode, i), holes[i]);
	ck_assert_uint_eq(extent_next_hole(&inode, 0, 12), 2);
	ck_assert_uint_eq(extent_next_hole(&inode, 3, 12), 3);
	ck_assert_uint_eq(extent_next_hole(&inode, 4, 12), 8);
	ck_assert_uint_eq(extent_next_hole(&inode, 9, 12), 12);
	ck_assert_uint_eq(extent_next_hole(&inode, 4, 6), 6);
	ck_assert_uint_eq(extent_next_data(&inode, 2, 12), 4);
	ck_assert_uint_eq(extent_next_data(&inode, 8, 12), 9);
	ck_assert_uint_eq(extent_next_data(&inode, 5, 12), 5);
	ck_assert_uint_eq(extent_next_data(&inode, 2, 3), 3);
	ck_assert_uint_eq(extent_hole_blocks(&inode), 3);
	ck_assert_uint_eq(extent_smallest(&inode), 1);
}
END_TEST

START_TEST(random_edits_match_a_bitmap)
{
	enum { BLOCKS = 512 };
	bool model[BLOCKS] = { 0 };
	srand(12345);
	for (int round = 0; round < 4000; round++) {
		uint64_t a = (uint64_t)rand() % BLOCKS, b = (uint64_t)rand() % BLOCKS;
		uint64_t start = a < b ? a : b, end = (a < b ? b : a) + 1;
		bool add = rand() & 1;
		ck_assert_int_eq(add ? extent_add(&inode, start, end)
				     : extent_remove(&inode, start, end), 0);
		for (uint64_t i = start; i < end; i++)
			model[i] = add;
		/* Plain comparisons, one assertion per round: fast enough under sanitizers. */
		bool well_formed = true, matches = true;
		for (uint32_t h = 0; h < inode.hole_count; h++) {
			well_formed &= inode.holes[h].start < inode.holes[h].end;
			if (h)  /* sorted, disjoint, not adjacent */
				well_formed &= inode.holes[h - 1].end < inode.holes[h].start;
		}
		for (uint64_t i = 0; i < BLOCKS; i++)
			matches &= extent_is_hole(&inode, i) == model[i];
		ck_assert_msg(well_formed && matches, "round %d: list %s, contents %s", round,
			      well_formed ? "ok" : "malformed", matches ? "ok" : "differ");
	}
}
END_TEST

static Suite *extent_suite(void)
{
	Suite *suite = suite_create("extent");
	TCase *tc = tcase_create("holes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, add_merges_touching_and_overlapping);
	tcase_add_test(tc, remove_splits_trims_and_drops);
	tcase_add_test(tc, queries_answer_block_by_block);
	tcase_add_test(tc, random_edits_match_a_bitmap);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(extent_suite());
}
