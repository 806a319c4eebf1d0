/* object: implementation pending. */
#include "lib/object.h"
