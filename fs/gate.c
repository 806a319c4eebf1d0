/*
 * The gate: every FUSE request passes gate_enter() before its work and gate_leave()
 * after it. This is where per-request policy (the caller's role, mode and path rules,
 * a revoked lease) is decided and where each access becomes an audit record. For now
 * the kernel's default_permissions is the only access control and nothing is recorded.
 */
#include "fs/vaultfs.h"

int gate_enter(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino)
{
	(void)vfs;
	(void)req;
	(void)op;
	(void)ino;
	return 0;
}

void gate_leave(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino, int result)
{
	(void)vfs;
	(void)req;
	(void)op;
	(void)ino;
	(void)result;
}
