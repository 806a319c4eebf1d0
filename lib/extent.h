/*
 * Hole lists of regular files: which blocks were never written and read as zeros.
 * Operates on the sorted, disjoint, non-adjacent extent array of a struct meta_inode.
 * Holes are tracked explicitly because an all-zero ciphertext block must never be taken
 * for a hole (DESIGN.md, integrity contract item 5).
 */
#ifndef VAULTFS_EXTENT_H
#define VAULTFS_EXTENT_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/meta.h"

/* Whether block index is inside a hole. O(log n). */
bool extent_is_hole(const struct meta_inode *inode, uint64_t index);

/* Mark blocks [start, end) as holes, merging with neighbours. Returns 0 or -ENOMEM.
 * The count may exceed META_HOLES_MAX afterwards: see extent_smallest(). */
int extent_add(struct meta_inode *inode, uint64_t start, uint64_t end)
	__attribute__((warn_unused_result));

/* Mark blocks [start, end) as written, splitting a hole if needed. Returns 0 or -ENOMEM. */
int extent_remove(struct meta_inode *inode, uint64_t start, uint64_t end)
	__attribute__((warn_unused_result));

/* The first index >= from that is not a hole, or limit when [from, limit) is all holes. */
uint64_t extent_next_data(const struct meta_inode *inode, uint64_t from, uint64_t limit);

/* The first index >= from that is a hole, or limit when [from, limit) has no hole. */
uint64_t extent_next_hole(const struct meta_inode *inode, uint64_t from, uint64_t limit);

/* Number of blocks in holes. */
uint64_t extent_hole_blocks(const struct meta_inode *inode);

/* Index in inode->holes of the shortest hole; the inode must have at least one. */
uint32_t extent_smallest(const struct meta_inode *inode);

#endif
