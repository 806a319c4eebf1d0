/*
 * libFuzzer harness of the keyagent.conf reader: each input becomes the contents of a
 * configuration file (a memfd reached through /proc/self/fd, mode 0600) and goes through
 * config_read. A file read must give a complete configuration and have no NUL byte; a
 * refusal must name the file in its message. Seeds and findings live in
 * tests/fuzz/corpus-config/, which check_config replays.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct config config;
	struct config_error err;
	int ret;

	if (fd < 0) {
		fd = memfd_create("keyagent.conf", MFD_CLOEXEC);
		if (fd < 0 || fchmod(fd, 0600) != 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	ret = config_read(&config, path, &err);
	if (ret == 0) {
		if (config.socket_path == NULL || config.keystore_path == NULL ||
		    config.data_root == NULL || config.policy == NULL ||
		    config.socket_path[0] != '/' || config.keystore_path[0] != '/' ||
		    config.data_root[0] != '/' || config.lease_ttl < 5 || config.lease_ttl > 86400 ||
		    (config.kek_source != CONFIG_KEK_PASSPHRASE && config.kek_arg == NULL) ||
		    memchr(data, '\0', size) != NULL)
			abort();   /* a NUL byte would have cut a line short */
		config_release(&config);
		return 0;
	}
	if (ret != -EINVAL && ret != -ENOMEM)
		abort();
	if (strncmp(err.message, path, strlen(path)) != 0 ||
	    memchr(err.message, '\0', sizeof(err.message)) == NULL)
		abort();
	return 0;
}
