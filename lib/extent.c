/*
 * Hole extent lists: small sorted arrays, edited in place. Files written front to back
 * have none; sparse files have a few. Every edit keeps the array sorted, disjoint and
 * non-adjacent, which meta_inode_decode() insists on.
 */
#include "lib/extent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Index of the first extent whose end is > index (the one that may contain it). */
static uint32_t first_ending_after(const struct meta_inode *inode, uint64_t index)
{
	uint32_t low = 0, high = inode->hole_count;

	while (low < high) {
		uint32_t mid = low + (high - low) / 2;
		if (inode->holes[mid].end <= index)
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

bool extent_is_hole(const struct meta_inode *inode, uint64_t index)
{
	uint32_t i = first_ending_after(inode, index);
	return i < inode->hole_count && inode->holes[i].start <= index;
}

static int reserve(struct meta_inode *inode, uint32_t count)
{
	struct meta_extent *grown = realloc(inode->holes, (size_t)count * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	inode->holes = grown;
	return 0;
}

int extent_add(struct meta_inode *inode, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	/* Extents that touch or overlap [start, end) merge into one. */
	uint32_t first = start ? first_ending_after(inode, start - 1) : 0;
	uint32_t last = first;
	while (last < inode->hole_count && inode->holes[last].start <= end)
		last++;
	if (first == last) {
		int err = reserve(inode, inode->hole_count + 1);
		if (err)
			return err;
		memmove(&inode->holes[first + 1], &inode->holes[first],
			(inode->hole_count - first) * sizeof(*inode->holes));
		inode->holes[first] = (struct meta_extent){ start, end };
		inode->hole_count++;
		return 0;
	}
	struct meta_extent merged = {
		start < inode->holes[first].start ? start : inode->holes[first].start,
		end > inode->holes[last - 1].end ? end : inode->holes[last - 1].end,
	};
	inode->holes[first] = merged;
	memmove(&inode->holes[first + 1], &inode->holes[last],
		(inode->hole_count - last) * sizeof(*inode->holes));
	inode->hole_count -= last - first - 1;
	return 0;
}

int extent_remove(struct meta_inode *inode, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	uint32_t i = first_ending_after(inode, start);
	while (i < inode->hole_count && inode->holes[i].start < end) {
		struct meta_extent hole = inode->holes[i];
		bool keep_left = hole.start < start, keep_right = hole.end > end;
		if (keep_left && keep_right) {
			int err = reserve(inode, inode->hole_count + 1);
			if (err)
				return err;
			memmove(&inode->holes[i + 1], &inode->holes[i],
				(inode->hole_count - i) * sizeof(*inode->holes));
			inode->holes[i] = (struct meta_extent){ hole.start, start };
			inode->holes[i + 1] = (struct meta_extent){ end, hole.end };
			inode->hole_count++;
			return 0;
		}
		if (keep_left) {
			inode->holes[i].end = start;
			i++;
		} else if (keep_right) {
			inode->holes[i].start = end;
			i++;
		} else {
			memmove(&inode->holes[i], &inode->holes[i + 1],
				(inode->hole_count - i - 1) * sizeof(*inode->holes));
			inode->hole_count--;
		}
	}
	return 0;
}

uint64_t extent_next_data(const struct meta_inode *inode, uint64_t from, uint64_t limit)
{
	uint32_t i = first_ending_after(inode, from);
	if (i < inode->hole_count && inode->holes[i].start <= from)
		from = inode->holes[i].end;
	return from < limit ? from : limit;
}

uint64_t extent_next_hole(const struct meta_inode *inode, uint64_t from, uint64_t limit)
{
	uint32_t i = first_ending_after(inode, from);
	if (i == inode->hole_count)
		return limit;
	uint64_t start = inode->holes[i].start > from ? inode->holes[i].start : from;
	return start < limit ? start : limit;
}

uint64_t extent_hole_blocks(const struct meta_inode *inode)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < inode->hole_count; i++)
		total += inode->holes[i].end - inode->holes[i].start;
	return total;
}

uint32_t extent_smallest(const struct meta_inode *inode)
{
	uint32_t best = 0;
	for (uint32_t i = 1; i < inode->hole_count; i++)
		if (inode->holes[i].end - inode->holes[i].start <
		    inode->holes[best].end - inode->holes[best].start)
			best = i;
	return best;
}
