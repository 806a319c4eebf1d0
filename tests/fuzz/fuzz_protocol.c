/*
 * libFuzzer harness of the agent protocol decoder: any input is a frame body; one the
 * decoder accepts must re-encode to exactly itself and decode again. Seeds and every
 * crash found live in tests/fuzz/corpus/, which tests/unit/check_protocol.c replays.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/protocol.h"
#include "lib/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialised;
	struct protocol_message msg, again;
	uint8_t *frame;
	size_t len;

	if (!initialised) {
		if (secret_init() != 0)
			abort();
		initialised = 1;
	}
	if (protocol_decode(&msg, data, size) != 0)
		return 0;
	if (protocol_encode(&frame, &len, &msg) != 0)
		abort();   /* an accepted message must encode */
	if (len != size + 4 || get_le32(frame) != size || memcmp(frame + 4, data, size) != 0)
		abort();   /* and to the very bytes it came from */
	if (protocol_decode(&again, frame + 4, len - 4) != 0)
		abort();
	protocol_message_release(&again);
	protocol_frame_free(frame, len);
	protocol_message_release(&msg);
	return 0;
}
