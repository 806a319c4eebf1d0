/* crypto: implementation pending. */
#include "lib/crypto.h"
