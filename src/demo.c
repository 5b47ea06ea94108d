/*
 * demo.c - the synthetic data generator (see demo.h).
 *
 * A splitmix64 stream drives every choice, so output depends on the seed
 * only.  Never used on real data; writes only through records_add.
 */
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "demo.h"
#include "ids.h"
#include <sodium.h>
#include "banned.h"

/* Every name is at least 5 bytes long, so that the stolen-store test can
 * search for it in megabytes of ciphertext without chance matches. */
static const char *const family[] = {
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND",
    "DUBOIS", "MOREAU", "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY",
    "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD", "BONNET", "DUPONT",
    "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "LEFÈVRE",
    "FAURE", "ANDRÉ", "MERCIER", "BLANC", "GUÉRIN", "BOYER", "GARNIER",
    "CHEVALIER", "FRANÇOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN",
    "ROBIN", "CLÉMENT", "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU",
    "MASSON", "MARCHAND", "DUVAL", "DUMONT", "LEMAIRE", "MEYER", "DUFOUR",
    "MEUNIER", "BLANCHARD", "GIRAUD", "RIVIÈRE", "LUCAS", "BRUNET",
    "GAILLARD", "BARBIER", "ARNAUD", "MARTINEZ", "GÉRARD", "ROCHE",
    "RENARD", "SCHMITT", "LEROUX", "COLIN", "VIDAL", "CARON", "PICARD",
    "ROGER", "FABRE", "AUBERT", "LEMOINE", "RENAUD", "DUMAS", "LACROIX",
    "OLIVIER", "PHILIPPE", "BOURGEOIS", "PIERRE", "BENOÎT", "LECLERC",
    "PAYET", "ROLLAND", "GUILLAUME", "LECOMTE", "LOPEZ", "DUPUY", "GUILLOT",
    "HUBERT", "BERGER", "CARPENTIER", "SANCHEZ", "DUPUIS", "MOULIN",
    "DESCHAMPS", "VASSEUR", "BOUCHER", "FLEURY", "ROYER", "JACQUET",
    "POIRIER", "MARTY", "AUBRY", "GUYOT", "CARRÉ", "CHARLES", "RENAULT",
    "MÉNARD", "MAILLARD", "BERTIN", "BAILLY", "SCHNEIDER", "FERNANDEZ",
    "LE GALL", "COLLET", "LÉGER", "BOUVIER", "JULIEN", "PRÉVOST", "MILLET",
    "PERROT", "DANIEL", "LE ROUX", "COUSIN", "GERMAIN", "BRETON", "BESSON",
    "LANGLOIS", "LE GOFF", "PELLETIER", "LÉVÊQUE", "PERRIER", "LEBLANC",
    "BARRÉ", "LEBRUN", "MARCHAL", "WEBER", "MALLET", "HAMON", "BOULANGER",
    "MONNIER", "MICHAUD", "GUICHARD", "GILLET", "ÉTIENNE", "GRONDIN",
    "POULAIN", "TESSIER", "CHAUVIN", "DA SILVA", "BOUCHET", "HUMBERT",
    "REYNAUD", "ANTOINE", "HOARAU", "PERRET", "CORDIER", "PICHON",
    "LEJEUNE", "GILBERT", "DELAUNAY", "PASQUIER", "CARLIER", "LAPORTE",
};

static const char *const given_child[] = {
    "Gabriel", "Raphaël", "Louis", "Arthur", "Jules", "Maël", "Lucas",
    "Sacha", "Gabin", "Nathan", "Aaron", "Mohamed", "Ethan", "Tiago",
    "Victor", "Marius", "Naël", "Isaac", "Timéo", "Éliott", "Côme", "Léon",
    "Valentin", "Baptiste", "Théo", "Clément", "Antoine", "Maxime", "Romain",
    "Louise", "Ambre", "Alice", "Léna", "Julia", "Chloé", "Inès", "Agathe",
    "Léonie", "Camille", "Manon", "Margaux", "Lucie", "Sarah", "Charlotte",
    "Juliette", "Clémence", "Pauline", "Élise", "Mathilde", "Héloïse",
    "Anaïs", "Océane", "Justine", "Noémie", "Capucine", "Victoire",
    "Apolline", "Éloïse", "Adèle", "Rosalie", "Margot", "Salomé", "Maëlys",
    "Constance",
};

static const char *const given_adult[] = {
    "Nathalie", "Isabelle", "Sylvie", "Catherine", "Sandrine", "Stéphanie",
    "Céline", "Aurélie", "Valérie", "Christophe", "Stéphane", "Sébastien",
    "Nicolas", "Frédéric", "Laurent", "Olivier", "Philippe", "Julien",
    "Vincent", "Jérôme", "Pierre", "Caroline", "Virginie", "Émilie",
    "Patrice", "Karine", "Florence", "Thierry", "Pascal", "Hélène",
};

static const char *const streets[] = {
    "rue des Tilleuls", "avenue Jean Jaurès", "impasse des Glycines",
    "boulevard Victor Hugo", "chemin du Moulin", "place de la Mairie",
    "allée des Peupliers", "rue Émile Zola", "route de la Forêt",
};

static const char *const towns[] = {
    "Villebrune-sur-Loue", "Saint-Aubin-des-Prés", "Montferrand-le-Haut",
    "Bourg-Sainte-Claire", "Les Essarts-Verts", "Val-de-Rance",
};

static const char *const functions[] = {
    "professeur de mathématiques", "professeure de lettres",
    "professeur d'histoire-géographie", "professeure d'anglais",
    "professeur de SVT", "professeure d'EPS", "conseiller principal d'éducation",
};

static const char *const levels[] = { "6e", "5e", "4e", "3e" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t
next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *
pick(uint64_t *s, const char *const *list, size_t n)
{
    return list[next(s) % n];
}

struct gen {
    struct records *r;
    const struct demo_opts *o;
    demo_fn fn;
    void *arg;
    struct demo_counts *n;
    struct cf_errmsg *em;
    uint64_t s;
    char cids[16][RECORD_ID_HEX + 1];      /* the current establishment's classes */
};

static enum cf_err
add(struct gen *g, struct record_add *in, char id[RECORD_ID_HEX + 1],
    uint64_t *counter)
{
    enum cf_err rc = records_add(g->r, in, id, g->em);

    if (rc != CF_OK)
        return rc;
    (*counter)++;
    if (g->fn != NULL)
        g->fn(g->arg, in, id);
    return CF_OK;
}

static void
address(struct gen *g, char *out, size_t cap)
{
    snprintf(out, cap, "%u %s, 99%03u %s", (unsigned)(next(&g->s) % 120) + 1,
             pick(&g->s, streets, COUNT(streets)), (unsigned)(next(&g->s) % 1000),
             pick(&g->s, towns, COUNT(towns)));
}

static enum cf_err
guardians(struct gen *g, const char *student_id, const char *family_name,
          uint64_t serial)
{
    unsigned k, count = g->o->guardians_per;
    static const char *const rel[] = { "mère", "père", "tutrice", "tuteur" };
    char gid[RECORD_ID_HEX + 1], lid[RECORD_ID_HEX + 1];
    char phone[24], email[EMAIL_MAX_BYTES + 1], addr[ADDRESS_MAX_BYTES + 1];
    char slug_g[64], slug_f[64];
    enum cf_err rc;

    if (count == 2 && next(&g->s) % 10 < 3)
        count = 1;                  /* three in ten have one guardian on record */
    for (k = 0; k < count; k++) {
        const char *given = pick(&g->s, given_adult, COUNT(given_adult));
        const char *fam = k == 0 ? family_name : pick(&g->s, family, COUNT(family));
        struct record_add in = { .kind = REC_GUARDIAN, .compartment = g->o->academie };

        ids_ascii_slug(given, slug_g, sizeof slug_g);
        ids_ascii_slug(fam, slug_f, sizeof slug_f);
        snprintf(phone, sizeof phone, "06 %02u %02u %02u %02u",
                 (unsigned)(next(&g->s) % 100), (unsigned)(next(&g->s) % 100),
                 (unsigned)(next(&g->s) % 100), (unsigned)(next(&g->s) % 100));
        snprintf(email, sizeof email, "%s.%s.%llu%u@parent.demo.invalid", slug_g,
                 slug_f, (unsigned long long)serial, k);
        address(g, addr, sizeof addr);
        in.value[0] = fam;
        in.value[1] = given;
        in.value[2] = phone;
        in.value[3] = email;
        in.value[4] = addr;
        if ((rc = add(g, &in, gid, &g->n->guardians)) != CF_OK)
            return rc;
        in = (struct record_add){ .kind = REC_GUARDIAN_LINK,
                                  .parent = { gid, student_id },
                                  .value = { rel[(k == 0 ? 0 : 1) + (next(&g->s) % 10 == 0 ? 2 : 0)] } };
        if ((rc = add(g, &in, lid, &g->n->links)) != CF_OK)
            return rc;
    }
    return CF_OK;
}

static enum cf_err
establishment(struct gen *g, unsigned e, uint64_t *student_serial)
{
    char eid[RECORD_ID_HEX + 1], sid[RECORD_ID_HEX + 1];
    char (*cids)[RECORD_ID_HEX + 1] = g->cids;
    char name[ESTABLISHMENT_NAME_MAX_BYTES + 1], label[16];
    char email[EMAIL_MAX_BYTES + 1], addr[ADDRESS_MAX_BYTES + 1];
    char date[DATE_BYTES + 1], slug_g[64], slug_f[64];
    unsigned nclasses, c, i, nstaff;
    struct uai uai;
    struct ine ine;
    enum cf_err rc;
    struct record_add in = { .kind = REC_ESTABLISHMENT, .compartment = g->o->academie };

    if (ids_make_uai(990000 + g->o->first_establishment + e, &uai) != CF_OK)
        return cf_fail(g->em, CF_ERR_LIMIT, "demo-data: establishment numbers exhausted");
    snprintf(name, sizeof name, "Collège %s %s", pick(&g->s, given_adult, COUNT(given_adult)),
             pick(&g->s, family, COUNT(family)));
    in.value[0] = uai.s;
    in.value[1] = name;
    if ((rc = add(g, &in, eid, &g->n->establishments)) != CF_OK)
        return rc;

    nclasses = g->o->students_per / 25;
    nclasses = nclasses < 1 ? 1 : nclasses > 16 ? 16 : nclasses;
    for (c = 0; c < nclasses; c++) {
        snprintf(label, sizeof label, "%s%c", levels[c % 4], 'A' + (int)(c / 4));
        in = (struct record_add){ .kind = REC_CLASS, .parent = { eid, NULL }, .value = { label } };
        if ((rc = add(g, &in, cids[c], &g->n->classes)) != CF_OK)
            return rc;
    }

    nstaff = g->o->students_per / 12 + 2;
    for (i = 0; i < nstaff; i++) {
        const char *given = pick(&g->s, given_adult, COUNT(given_adult));
        const char *fam = pick(&g->s, family, COUNT(family));

        const char *function = pick(&g->s, functions, COUNT(functions));
        unsigned k;

        ids_ascii_slug(given, slug_g, sizeof slug_g);
        ids_ascii_slug(fam, slug_f, sizeof slug_f);
        snprintf(email, sizeof email, "%s.%s.%u.%u@ac-demo.invalid", slug_g, slug_f,
                 g->o->first_establishment + e, i);
        in = (struct record_add){ .kind = REC_STAFF, .parent = { eid, NULL },
                                  .value = { fam, given, email, function } };
        if ((rc = add(g, &in, sid, &g->n->staff)) != CF_OK)
            return rc;
        /* A teacher teaches three classes of the establishment. */
        if (strncmp(function, "professeur", 10) != 0)
            continue;
        for (k = 0; k < 3 && k < nclasses; k++) {
            char tid[RECORD_ID_HEX + 1];

            in = (struct record_add){ .kind = REC_TEACHING,
                                      .parent = { sid, cids[(i * 3 + k) % nclasses] },
                                      .value = { function } };
            if ((rc = add(g, &in, tid, &g->n->teachings)) != CF_OK)
                return rc;
        }
    }

    for (i = 0; i < g->o->students_per; i++) {
        const char *given = pick(&g->s, given_child, COUNT(given_child));
        const char *fam = pick(&g->s, family, COUNT(family));
        uint64_t serial = (*student_serial)++;

        if (ids_make_ine_bea(999000000ULL + serial, &ine) != CF_OK)
            return cf_fail(g->em, CF_ERR_LIMIT, "demo-data: INE numbers exhausted");
        snprintf(date, sizeof date, "%04u-%02u-%02u", 2008 + (unsigned)(next(&g->s) % 12),
                 1 + (unsigned)(next(&g->s) % 12), 1 + (unsigned)(next(&g->s) % 28));
        ids_ascii_slug(given, slug_g, sizeof slug_g);
        ids_ascii_slug(fam, slug_f, sizeof slug_f);
        snprintf(email, sizeof email, "%s.%s.%llu@eleve.demo.invalid", slug_g, slug_f,
                 (unsigned long long)serial);
        address(g, addr, sizeof addr);
        in = (struct record_add){ .kind = REC_STUDENT,
                                  .parent = { eid, cids[i % nclasses] },
                                  .value = { ine.s, fam, given, date, addr, email } };
        if ((rc = add(g, &in, sid, &g->n->students)) != CF_OK)
            return rc;
        if ((rc = guardians(g, sid, fam, serial)) != CF_OK)
            return rc;
    }
    return CF_OK;
}

enum cf_err
demo_generate(struct records *r, const struct demo_opts *o, demo_fn fn,
              void *arg, struct demo_counts *counts, struct cf_errmsg *em)
{
    struct gen g;
    uint64_t serial = (uint64_t)o->first_establishment * DEMO_MAX_STUDENTS_PER;
    unsigned e;
    enum cf_err rc = CF_OK;

    memset(&g, 0, sizeof g);
    g.r = r;
    g.o = o;
    g.fn = fn;
    g.arg = arg;
    g.n = counts;
    g.em = em;
    g.s = o->seed;
    memset(counts, 0, sizeof *counts);
    if (o->establishments < 1 || o->establishments > DEMO_MAX_ESTABLISHMENTS)
        return cf_fail(em, CF_ERR_INPUT, "establishments: must be 1 to %d", DEMO_MAX_ESTABLISHMENTS);
    if (o->students_per < 1 || o->students_per > DEMO_MAX_STUDENTS_PER)
        return cf_fail(em, CF_ERR_INPUT, "students-per: must be 1 to %d", DEMO_MAX_STUDENTS_PER);
    if (o->guardians_per > 2)
        return cf_fail(em, CF_ERR_INPUT, "guardians-per: must be 0, 1 or 2");
    if (records_begin(r, 1) != CF_OK)
        return cf_fail(em, CF_ERR_STORE, "store: cannot begin a transaction");
    for (e = 0; e < o->establishments && rc == CF_OK; e++)
        rc = establishment(&g, e, &serial);
    if (rc == CF_OK)
        rc = records_commit(r, em);
    if (rc != CF_OK) {
        records_rollback(r);
        memset(counts, 0, sizeof *counts);
    }
    return rc;
}

enum cf_err
demo_canary_people(struct records *r, const char *establishment_id, unsigned n,
                   char (*ids)[RECORD_ID_HEX + 1], struct cf_errmsg *em)
{
    char date[DATE_BYTES + 1];
    struct ine ine;
    unsigned i, tries;
    enum cf_err rc;

    if (n < 1 || n > DEMO_MAX_CANARIES)
        return cf_fail(em, CF_ERR_INPUT, "count: must be 1 to %d", DEMO_MAX_CANARIES);
    for (i = 0; i < n; i++) {
        struct record_add in = { .kind = REC_STUDENT, .parent = { establishment_id, NULL } };

        snprintf(date, sizeof date, "%04u-%02u-%02u", 2008 + randombytes_uniform(12),
                 1 + randombytes_uniform(12), 1 + randombytes_uniform(28));
        in.value[1] = family[randombytes_uniform(COUNT(family))];
        in.value[2] = given_child[randombytes_uniform(COUNT(given_child))];
        in.value[3] = date;
        /* an INE like any other; a (rare) clash with an existing one: draw again */
        for (tries = 0; tries < 8; tries++) {
            if (ids_make_ine_bea(998000000ULL + randombytes_uniform(1000000), &ine) != CF_OK)
                return cf_fail(em, CF_ERR_LIMIT, "canary: no INE");
            in.value[0] = ine.s;
            rc = records_add(r, &in, ids[i], em);
            if (rc != CF_ERR_EXISTS)
                break;
        }
        if (rc != CF_OK)
            return rc;
    }
    return CF_OK;
}
