/* secret: implementation pending. */
#include "lib/secret.h"
