/* vault: implementation pending. */
#include "lib/vault.h"
