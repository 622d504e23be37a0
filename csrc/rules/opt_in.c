/*
 * Rule 1, the schools' opt-in: a local user none of whose roster schools
 * has `messenger: true` (or who is on no roster, with unlisted_users: deny)
 * can do nothing, and a managed room of such a school is frozen. The tests
 * are inline in opt_in.h; this file fills in the user's denial.
 */
#include <string.h>

#include "rules/opt_in.h"

bool ssp_opt_in_deny_user(const ssp_engine *engine, const ssp_roster_user *user, ssp_denial *d)
{
    const ssp_config *config = &engine->config;

    d->say = SSP_SAY_USUAL;
    if (user == NULL) {
        d->rule = SSP_RULE_NOT_ON_ROSTER;
        d->enforced = config->enforce;
        d->school[0] = '\0';
        return true;
    }
    /* None of the user's schools has opted in. The denial is enforced if any
     * of them enforces; the audit names the first that does. */
    d->rule = SSP_RULE_SCHOOL_NOT_ENABLED;
    d->enforced = false;
    for (size_t i = 0; i < user->n; i++) {
        const char *id = user->memberships[i].school;
        bool enforced = ssp_school_enforced(config, user->memberships[i].config);

        if (i == 0 || (enforced && !d->enforced)) {
            ssp_copy_school(d->school, id, strlen(id));
            d->enforced = enforced;
        }
    }
    return true;
}
