/* t-optim.c: RAdam and Lookahead trajectories against tests/gen/
 * optim_refs.py (torch's and timm's update rules re-done in plain Python),
 * RAdam's first step by hand, gradient clipping and scaling, the lr
 * schedules at chosen steps (and against torch's recursive form), and the
 * initialisers: moments of 10^5 draws, bounds, fans, determinism.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "mm/optim.h"
#include "mm/tensor.h"

/* BEGIN optim_refs.py (tests/gen/optim_refs.py; do not edit) */
static const double ref_radam_l2[10][9] = {
    {0.49279848847065932, -0.23666926581726427, 0.98994996248300227, -1.4592317818956819, 0.73883168907268382, 0.12357414856674817, 0.10387787151005975, -0.19401926979366246, 0.295162766092749},
    {0.48819354402247261, -0.22197575117009222, 0.9791258757076744, -1.4213807541133769, 0.72600653289459816, 0.12270686715540875, 0.10550386059620716, -0.1882719919283363, 0.29240717941090016},
    {0.48554536802694898, -0.20756408366988771, 0.96639925478406263, -1.3860400154008785, 0.71311108436063897, 0.12369122315001728, 0.10625206220415576, -0.18122480709838662, 0.2920181888465842},
    {0.48339732037433775, -0.19474332418668031, 0.95182075399417998, -1.3518633969735783, 0.70156707983116617, 0.12670343015615954, 0.10767976919004124, -0.17227097042679387, 0.29309616716861736},
    {0.48041373585997321, -0.18376183629843734, 0.93646589943620584, -1.3174572327285476, 0.69182199282811319, 0.13081997615425819, 0.11059937073904308, -0.1619857496354026, 0.29420902103891156},
    {0.48020694990308971, -0.18353524665601237, 0.93620921411261315, -1.3172007317145402, 0.69160069527712043, 0.13102275798351512, 0.11080850796065897, -0.16173026343883626, 0.29421885345460802},
    {0.47992521158199464, -0.18324170157521669, 0.93589332051539476, -1.3168741068950984, 0.69131473799270426, 0.13123346894702151, 0.11108552274373976, -0.16141673247667798, 0.29414275142209045},
    {0.47959677958593894, -0.18288235330305794, 0.93552691449463898, -1.3164887438697643, 0.69096234594932704, 0.13143190776698643, 0.11137962080064108, -0.16106231400858104, 0.29402343950304533},
    {0.47927171721969797, -0.18246371322056082, 0.93510596628175957, -1.3160543191485314, 0.69054901742486985, 0.13167207734048195, 0.11165492720706811, -0.16065980245748088, 0.29395918723946296},
    {0.47895143224856029, -0.18200064453509751, 0.93462857105231056, -1.3155756990398997, 0.69008931842628363, 0.13199575902780825, 0.11195428742264719, -0.16019905820952721, 0.2940005571021812},
};
static const double ref_radam_transmil[10][9] = {
    {0.48159697694131859, -0.22133853163452857, 0.97189992496600441, -1.4064635637913638, 0.72166337814536763, 0.12114829713349634, 0.1079557430201195, -0.18843853958732493, 0.29092553218549805},
    {0.46879935903243458, -0.19054683697065175, 0.94290217396866016, -1.3207648685298738, 0.6906461140157627, 0.11850182099972653, 0.11132595323589731, -0.17745517740816777, 0.28609847192099802},
    {0.46023658030787112, -0.16095604805786734, 0.91077227610280431, -1.2419767276560116, 0.66017362151051207, 0.11962716780461248, 0.11288888811598669, -0.16398197289133856, 0.28606107974367451},
    {0.4529230694201492, -0.13517489209248221, 0.87566861534167661, -1.1673031461861647, 0.63309224149726895, 0.12481682115650598, 0.11577608511099109, -0.14682079119294131, 0.28898139148923857},
    {0.44415833537244787, -0.11364810519880456, 0.83980006504301108, -1.0938907416942978, 0.61025404635131031, 0.13215528550694683, 0.12161281660555454, -0.12714727896475131, 0.29196814019003753},
    {0.4393485012969619, -0.11207824795140067, 0.83089310552303508, -1.0824448814316627, 0.60374667264358139, 0.13124535592009978, 0.12203139527933581, -0.12663736977521139, 0.29204154675958011},
    {0.43443604445993883, -0.11039556011171683, 0.82196848211341611, -1.0709753011203442, 0.59718770376787234, 0.13036538741153839, 0.12258498986538247, -0.12601580838372631, 0.29195260358390113},
    {0.42949939911731783, -0.10859812758177169, 0.81304540058209185, -1.0595066490797671, 0.59056179573619116, 0.12947616051592095, 0.12316949872150093, -0.12531950085043189, 0.29178983057446606},
    {0.42467564317331585, -0.10670017230840705, 0.80410780930186665, -1.0480606925923748, 0.58387969266648021, 0.12868192073906037, 0.12371143545923936, -0.12453063384407262, 0.29175111929025543},
    {0.41996877944559052, -0.10473737699316167, 0.79514564149165323, -1.0366474632613563, 0.57718190724817853, 0.12806007394924776, 0.12429808062265278, -0.12362434823634733, 0.29192656636772873},
};
static const double ref_la_timm[10][9] = {
    {0.49329848847065932, -0.23691926581726427, 0.99094996248300227, -1.460731781895682, 0.73958168907268385, 0.12369914856674817, 0.10397787151005974, -0.19421926979366247, 0.29546276609274902},
    {0.48918449059535191, -0.22246610341525919, 0.9811100598984549, -1.4243435076827957, 0.72749276009937325, 0.12295480091781232, 0.10570484894963349, -0.18866673891243824, 0.29300147560358059},
    {0.48701893203606023, -0.20828438833036916, 0.96935111320293421, -1.3904283904782055, 0.71531879883809468, 0.12406017718017634, 0.10655422184093513, -0.18180899850871018, 0.29290169822931655},
    {0.48534578348633195, -0.19568288209851747, 0.95572274894364795, -1.357640362737629, 0.70448100665316382, 0.12719203541504859, 0.10808282025734305, -0.17303881869505475, 0.29426456720902011},
    {0.48282965721998761, -0.18491007358421435, 0.9412993852969711, -1.3245856065451906, 0.69542676636227485, 0.13142756845693632, 0.11110300245503575, -0.16293072430987174, 0.29565860914332165},
    {0.48482578569107748, -0.19648420166209746, 0.95519714986352189, -1.3573787244384974, 0.70526388422123398, 0.12784663433648519, 0.10893423552162701, -0.1722422750326601, 0.29429531457959701},
    {0.48455310355979636, -0.19619066653651554, 0.95488181228672853, -1.3570517181622217, 0.70498120966087396, 0.12806342983536925, 0.10921374817716342, -0.17192858054101984, 0.29424298415990896},
    {0.48423549251223319, -0.19583103399349022, 0.95451594315753374, -1.3566655886264993, 0.70463139469296354, 0.12827181466478471, 0.10951236195149465, -0.17157343919273826, 0.29415244007428742},
    {0.48437686722308826, -0.19594800602227108, 0.95464607809976565, -1.3568043836758803, 0.70474192549663939, 0.12818525054311081, 0.10936472488750146, -0.17170596174672481, 0.29420949368150656},
    {0.48408040456313328, -0.19548386211815202, 0.95416818292842964, -1.3563242996996514, 0.70428378023605431, 0.12851965020077363, 0.10967342895377664, -0.17124370941535078, 0.29428876516802716},
};
static const double ref_la_start[10][9] = {
    {0.49329848847065932, -0.23691926581726427, 0.99094996248300227, -1.460731781895682, 0.73958168907268385, 0.12369914856674817, 0.10397787151005974, -0.19421926979366247, 0.29546276609274902},
    {0.48918449059535191, -0.22246610341525919, 0.9811100598984549, -1.4243435076827957, 0.72749276009937325, 0.12295480091781232, 0.10570484894963349, -0.18866673891243824, 0.29300147560358059},
    {0.49350946601803014, -0.22914219416518458, 0.98467555660146711, -1.4452141952391027, 0.73265939941904734, 0.12453008859008817, 0.10327711092046757, -0.1909044992543551, 0.29645084911465824},
    {0.4917985708327568, -0.216419386358254, 0.9709580708336113, -1.4121075527572589, 0.72172076047295941, 0.12765921398745003, 0.10482476784760807, -0.18208142324561014, 0.2977930774960173},
    {0.48922240076806711, -0.20545362270482817, 0.95639294107158368, -1.3785459741951376, 0.71250610263747982, 0.13189039988840678, 0.1078752665320198, -0.17188918656733715, 0.29915428630739727},
    {0.49126670933634053, -0.21718339953380036, 0.97040609680158674, -1.4117514718153479, 0.72247221683238516, 0.12831298706860955, 0.10568191455456771, -0.18126933336032308, 0.29781626514097514},
    {0.49099262309499031, -0.21688625703566752, 0.97009015179761549, -1.4114236147121695, 0.72218539307693963, 0.12852959389559057, 0.10596173787364153, -0.18095540955807063, 0.29775991405240743},
    {0.49067282440919208, -0.21652307657084091, 0.96972316482838161, -1.4110363584294017, 0.72183151761035158, 0.12873760515961752, 0.10626147090338658, -0.18059941062333951, 0.29766407867601308},
    {0.49081377490949163, -0.21664187526827347, 0.96985353031698851, -1.4111753728138128, 0.72194420281587812, 0.12865109674424358, 0.10611433262680572, -0.18073189420322167, 0.29772237852343347},
    {0.49051064138608041, -0.21617374027942776, 0.96937446131606575, -1.4106933507255397, 0.7214817379103029, 0.12898510189105328, 0.1064261349353046, -0.18026856150266057, 0.29779428581646689},
};
static const double ref_tangle_lr[26] = {
    1.0000000000000001e-09,
    2.00008e-05,
    4.0000599999999998e-05,
    6.0000399999999996e-05,
    8.0000199999999993e-05,
    0.0001,
    9.9384478588053921e-05,
    9.7553070532176216e-05,
    9.4550871176797457e-05,
    9.0451804633775507e-05,
    8.5356803525421453e-05,
    7.9391323688362205e-05,
    7.2702255034478653e-05,
    6.5454304633775508e-05,
    5.7825941079686363e-05,
    5.0005000000000013e-05,
    4.2184058920313684e-05,
    3.4555695366224518e-05,
    2.7307744965521371e-05,
    2.0618676311637818e-05,
    1.4653196474578564e-05,
    9.5581953662245109e-06,
    5.4591288232025544e-06,
    2.4569294678238001e-06,
    6.2552141194609307e-07,
    1e-08,
};
/* END optim_refs.py */

// ---- helpers ---------------------------------------------------------------

static const double W0[6] = {0.5, -0.25, 1.0, -1.5, 0.75, 0.125};
static const double B0[3] = {0.1, -0.2, 0.3};

/* "w" (2, 3) and "w.bias" (3), set to W0 and B0. */
static mm_params *tiny(mm_dtype dt)
{
    mm_params *p = mm_params_new(dt);
    int64_t sw[2] = {2, 3}, sb[1] = {3};
    if (!mm_params_add(p, "w", 2, sw) || !mm_params_add(p, "w.bias", 1, sb) ||
        mm_params_alloc(p))
        return NULL;
    if (mm_tensor_set_f64(mm_params_get(p, 0), W0, 6) ||
        mm_tensor_set_f64(mm_params_get(p, 1), B0, 3))
        return NULL;
    return p;
}

/* The gradient optim_refs.py uses at step S: 2 (v - 0.3) + 0.5 cos(s + off + j). */
static void set_grads(mm_params *p, int s)
{
    for (int i = 0; i < 2; i++) {
        mm_tensor *w = mm_params_get(p, i);
        int64_t n = mm_tensor_numel(w);
        double g[6];
        for (int64_t j = 0; j < n; j++)
            g[j] = 2 * (mm_tensor_get1(w, j) - 0.3) +
                   0.5 * cos(s + 10 * i + (double)j);
        if (mm_tensor_set_f64(mm_tensor_grad(w), g, n)) abort();
    }
}

/* max |params - want| over "w" then "w.bias" (9 values). */
static double pdiff(mm_params *p, const double *want)
{
    double m = 0;
    for (int j = 0; j < 9; j++) {
        double got = mm_tensor_get1(mm_params_get(p, j < 6 ? 0 : 1), j < 6 ? j : j - 6);
        double d = fabs(got - want[j]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Run 10 steps of RAdam (+ Lookahead when LO) and compare with REF. */
static void trajectory(const char *what, mm_dtype dt, const mm_radam_opts *o,
                       const mm_lookahead_opts *lo, const double ref[10][9],
                       double tol)
{
    mm_params *p = tiny(dt);
    mm_lookahead *la = lo ? mm_lookahead_new(p, lo) : NULL;
    double worst = 0;
    int bad = 0, syncs = 0;
    for (int s = 1; s <= 10; s++) {
        set_grads(p, s);
        if (mm_radam_step(p, o)) bad++;
        if (la) syncs += mm_lookahead_step(la) << s;
        double d = pdiff(p, ref[s - 1]);
        if (!(d <= worst)) worst = d;
    }
    ok(!bad && worst <= tol, "%s: 10 steps, maxdiff %.3g (tol %g)", what,
       worst, tol);
    is_int(mm_params_step(p), 10, "%s: step count", what);
    if (la)
        is_int(syncs, (1 << 3) | (1 << 6) | (1 << 9), "%s: synced at 3, 6, 9",
               what);
    mm_lookahead_free(la);
    mm_params_free(p);
}

// ---- RAdam -----------------------------------------------------------------

static void test_radam(void)
{
    is_close(mm_radam_rho(0.999, 1), 1.0, 1e-9, "rho_1 = 1");
    ok(mm_radam_rho(0.999, 5) <= 5 && mm_radam_rho(0.999, 6) > 5,
       "beta2 0.999: rho_5 %.6f <= 5 < rho_6 %.6f", mm_radam_rho(0.999, 5),
       mm_radam_rho(0.999, 6));
    is_close(mm_radam_rho(0.999, 1000000), 1999.0, 1e-6, "rho_t -> rho_inf");

    /* step 1 by hand: m / (1 - b1) = g, un-rectified: w -= lr g */
    mm_params *p = tiny(MM_F64);
    set_grads(p, 1);
    double g0 = mm_tensor_get1(mm_tensor_grad(mm_params_get(p, 0)), 0);
    mm_radam_opts o = mm_radam_defaults();
    ok(mm_radam_step(p, &o) == 0, "radam step");
    is_close(mm_tensor_get1(mm_params_get(p, 0), 0), W0[0] - 1e-3 * g0, 1e-15,
             "step 1 by hand: w - lr g");
    mm_params_free(p);

    o.lr = 1e-2, o.weight_decay = 0.1;
    trajectory("radam L2 f64", MM_F64, &o, NULL, ref_radam_l2, 1e-13);
    trajectory("radam L2 f32", MM_F32, &o, NULL, ref_radam_l2, 2e-6);
    mm_radam_opts tm = mm_radam_defaults();
    tm.lr = 2e-2, tm.weight_decay = 0.5, tm.decoupled = 1, tm.no_decay_1d = 1;
    trajectory("radam decoupled, no decay on bias", MM_F64, &tm, NULL,
               ref_radam_transmil, 1e-13);

    mm_radam_opts bad = mm_radam_defaults();
    bad.beta2 = 1;
    p = tiny(MM_F64);
    ok(mm_radam_step(p, &bad) == -1, "beta2 1 refused");
    like(mm_strerror(), "betas", "message names the betas");
    mm_params_free(p);
    mm_params *un = mm_params_new(MM_F32);
    int64_t s1[1] = {2};
    mm_params_add(un, "x", 1, s1);
    ok(mm_radam_step(un, &o) == -1, "unallocated refused");
    like(mm_strerror(), "not allocated", "message says so");
    mm_params_free(un);
}

// ---- Lookahead -------------------------------------------------------------

static void test_lookahead(void)
{
    mm_radam_opts o = mm_radam_defaults();
    o.lr = 1e-2;
    mm_lookahead_opts lo = mm_lookahead_defaults();
    is_int(lo.k, 6, "timm default k 6");
    is_close(lo.alpha, 0.5, 0, "timm default alpha 0.5");
    lo.k = 3;
    trajectory("lookahead timm (slow from first sync)", MM_F64, &o, &lo,
               ref_la_timm, 1e-13);
    lo.init_at_start = 1;
    trajectory("lookahead paper (slow from start)", MM_F64, &o, &lo,
               ref_la_start, 1e-13);

    /* names, state, the timm first sync is a no-op on fast */
    mm_params *p = tiny(MM_F64);
    lo.init_at_start = 0;
    mm_lookahead *la = mm_lookahead_new(p, &lo);
    is_int(mm_lookahead_n_named(la), 2, "one slow tensor per parameter");
    const char *nm = NULL;
    mm_tensor *s1 = mm_lookahead_named(la, 1, &nm);
    is_str(nm, "w.bias.slow", "named NAME.slow");
    is_int(mm_tensor_numel(s1), 3, "slow shape");
    ok(mm_lookahead_named(la, 2, NULL) == NULL, "out of range: NULL");
    is_int(mm_lookahead_ready(la), 0, "timm: not ready before first sync");
    for (int s = 1; s <= 2; s++) {
        set_grads(p, s);
        if (mm_radam_step(p, &o)) abort();
        mm_lookahead_step(la);
    }
    set_grads(p, 3);
    if (mm_radam_step(p, &o)) abort();
    double before = mm_tensor_get1(mm_params_get(p, 0), 0);
    is_int(mm_lookahead_step(la), 1, "third step syncs");
    is_close(mm_tensor_get1(mm_params_get(p, 0), 0), before, 0,
             "first timm sync leaves fast as it was");
    is_close(mm_tensor_get1(mm_lookahead_named(la, 0, NULL), 0), before, 0,
             "slow = fast after it");
    is_int(mm_lookahead_count(la), 3, "count 3");
    mm_lookahead_set_count(la, 5);
    is_int(mm_lookahead_step(la), 1, "resumed count: sixth call syncs");
    mm_lookahead_free(la);
    lo.k = 0;
    ok(mm_lookahead_new(p, &lo) == NULL, "k 0 refused");
    like(mm_strerror(), "k >= 1", "message names k");
    mm_params_free(p);
}

// ---- gradients -------------------------------------------------------------

static void grads_to(mm_params *p, double a, double b)
{
    double gw[6] = {0, 0, 0, a, 0, 0}, gb[3] = {0, b, 0};
    if (mm_tensor_set_f64(mm_tensor_grad(mm_params_get(p, 0)), gw, 6) ||
        mm_tensor_set_f64(mm_tensor_grad(mm_params_get(p, 1)), gb, 3))
        abort();
}

static void test_grads(void)
{
    mm_params *p = tiny(MM_F32);
    grads_to(p, 3, 4);
    is_close(mm_params_grad_norm(p), 5, 1e-12, "total L2 norm over tensors");
    is_close(mm_params_clip_grad_norm(p, 10), 5, 1e-12, "clip returns 5");
    is_close(mm_tensor_get1(mm_tensor_grad(mm_params_get(p, 0)), 3), 3, 0,
             "below max_norm: untouched");
    is_close(mm_params_clip_grad_norm(p, 1), 5, 1e-12, "clip returns total");
    double c = 1 / (5 + 1e-6);
    is_close(mm_tensor_get1(mm_tensor_grad(mm_params_get(p, 0)), 3), 3 * c,
             1e-7, "scaled by max/(total + 1e-6)");
    is_close(mm_tensor_get1(mm_tensor_grad(mm_params_get(p, 1)), 1), 4 * c,
             1e-7, "every tensor scaled");
    is_close(mm_params_grad_norm(p), 1, 1e-6, "norm after clip ~ max_norm");
    grads_to(p, 3, 4);
    mm_params_clip_grad_norm(p, 5);
    ok(mm_tensor_get1(mm_tensor_grad(mm_params_get(p, 0)), 3) < 3,
       "total == max_norm: scaled by 5/(5 + 1e-6) as torch");
    grads_to(p, 3, 4);
    mm_params_scale_grad(p, 0.5);
    is_close(mm_params_grad_norm(p), 2.5, 1e-12, "scale_grad 0.5");
    grads_to(p, NAN, 4);
    ok(isnan(mm_params_clip_grad_norm(p, 1)), "NaN total returned");
    is_close(mm_tensor_get1(mm_tensor_grad(mm_params_get(p, 1)), 1), 4, 0,
             "non-finite total: gradients left alone");
    mm_params_free(p);
}

// ---- schedules -------------------------------------------------------------

static void test_sched(void)
{
    mm_sched c = {MM_SCHED_CONSTANT, 2e-4, 0, 0, 0, 0};
    is_close(mm_sched_lr(&c, 0), 2e-4, 0, "constant at 0");
    is_close(mm_sched_lr(&c, 12345), 2e-4, 0, "constant later");
    c.warmup = 4;
    is_close(mm_sched_lr(&c, 1), 0.5e-4, 1e-20, "constant, warm-up 1/4");
    is_close(mm_sched_lr(&c, 4), 2e-4, 0, "constant after warm-up");

    /* MAE-style: W 10, N 110, B 1e-3, F 1e-5, from 0 */
    mm_sched s = {MM_SCHED_COSINE, 1e-3, 10, 0, 110, 1e-5};
    is_close(mm_sched_lr(&s, 0), 0, 0, "warm-up starts at 0");
    is_close(mm_sched_lr(&s, -3), 0, 0, "negative step as 0");
    is_close(mm_sched_lr(&s, 5), 5e-4, 1e-18, "warm-up half way");
    is_close(mm_sched_lr(&s, 10), 1e-3, 1e-18, "warm-up ends at the peak");
    is_close(mm_sched_lr(&s, 60), (1e-3 + 1e-5) / 2, 1e-18,
             "cosine mid-point = (B + F) / 2");
    is_close(mm_sched_lr(&s, 35), 1e-5 + (1e-3 - 1e-5) * (1 + sqrt(0.5)) / 2,
             1e-18, "cosine quarter");
    is_close(mm_sched_lr(&s, 110), 1e-5, 0, "floor at N");
    is_close(mm_sched_lr(&s, 100000), 1e-5, 0, "floor stays");
    /* TANGLE: LinearLR(1e-5, 5) then CosineAnnealingLR(20, 1e-8), B 1e-4,
     * against torch's recursive form */
    mm_sched t = {MM_SCHED_COSINE, 1e-4, 5, 1e-5, 25, 1e-8};
    double worst = 0;
    for (int i = 0; i < 26; i++) {
        double d = fabs(mm_sched_lr(&t, i) - ref_tangle_lr[i]) / ref_tangle_lr[i];
        if (!(d <= worst)) worst = d;
    }
    ok(worst < 1e-12, "TANGLE schedule vs torch recursive form, rel maxdiff %.3g",
       worst);
}

// ---- initialisers ----------------------------------------------------------

static void moments(mm_tensor *t, double *mean, double *sd, double *lo,
                    double *hi)
{
    int64_t n = mm_tensor_numel(t);
    double s = 0, ss = 0;
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double x = mm_tensor_get1(t, i);
        s += x;
        if (x < *lo) *lo = x;
        if (x > *hi) *hi = x;
    }
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = mm_tensor_get1(t, i) - *mean;
        ss += d * d;
    }
    *sd = sqrt(ss / (double)(n - 1));
}

/* mean within 5 standard errors, sd within 2% */
static void check_moments(const char *what, mm_tensor *t, double mean,
                          double sd)
{
    double m, s, lo, hi;
    moments(t, &m, &s, &lo, &hi);
    double se = sd / sqrt((double)mm_tensor_numel(t));
    ok(fabs(m - mean) <= 5 * se && fabs(s - sd) <= 0.02 * sd,
       "%s: mean %.5g (want %.5g), sd %.5g (want %.5g)", what, m, mean, s, sd);
}

static void test_init(void)
{
    mm_rng g;
    mm_rng_seed(&g, 0);
    ok(g.s[0] == UINT64_C(0xE220A8397B1DCDAF), "splitmix64(0) seeds word 0");
    mm_ctx *ctx = mm_ctx_new();
    int64_t conv[4] = {64, 32, 3, 3}, fi, fo;
    mm_tensor *cw = mm_tensor_new(ctx, MM_F32, 4, conv);
    int rc = mm_init_fans(cw, &fi, &fo);
    ok(rc == 0 && fi == 288 && fo == 576,
       "conv (64, 32, 3, 3): fan_in 288, fan_out 576 (got %lld, %lld)",
       (long long)fi, (long long)fo);
    mm_tensor *lin = mm_tensor_new2(ctx, MM_F64, 200, 500);
    rc = mm_init_fans(lin, &fi, &fo);
    ok(rc == 0 && fi == 500 && fo == 200,
       "linear (200, 500): fan_in 500, fan_out 200");
    mm_tensor *v1 = mm_tensor_new1(ctx, MM_F64, 100000);
    ok(mm_init_fans(v1, &fi, &fo) == -1, "1-D: no fans");
    ok(mm_init_xavier_uniform(v1, &g, 1) == -1, "1-D xavier refused");

    mm_rng_seed(&g, 42);
    ok(mm_init_normal(v1, &g, 1, 2) == 0, "normal");
    check_moments("normal(1, 2)", v1, 1, 2);
    mm_init_uniform(v1, &g, -1, 3);
    double m, s, lo, hi;
    moments(v1, &m, &s, &lo, &hi);
    ok(lo >= -1 && hi < 3, "uniform in [-1, 3)");
    check_moments("uniform(-1, 3)", v1, 1, 4 / sqrt(12));

    double a = sqrt(6.0 / 700);
    mm_init_xavier_uniform(lin, &g, 1);
    moments(lin, &m, &s, &lo, &hi);
    ok(lo >= -a && hi <= a, "xavier_uniform within +-sqrt(6/700)");
    check_moments("xavier_uniform (200, 500)", lin, 0, a / sqrt(3));
    mm_init_xavier_normal(lin, &g, 1);
    check_moments("xavier_normal (200, 500)", lin, 0, sqrt(2.0 / 700));
    mm_init_snn(lin, &g);
    check_moments("snn N(0, 1/sqrt(500))", lin, 0, 1 / sqrt(500.0));
    mm_tensor *cw2 = mm_tensor_new(ctx, MM_F64, 4, (int64_t[4]){128, 32, 5, 5});
    mm_init_kaiming_normal(cw2, &g, MM_FAN_OUT, sqrt(2.0));
    check_moments("kaiming_normal fan_out relu (128, 32, 5, 5)", cw2, 0,
                  sqrt(2.0) / sqrt(128 * 25.0));
    mm_init_kaiming_normal(cw2, &g, MM_FAN_IN, 1);
    check_moments("kaiming_normal fan_in gain 1", cw2, 0, 1 / sqrt(32 * 25.0));

    /* trunc_normal(0, 1, -0.5, 2): bounds and the truncated moments */
    ok(mm_init_trunc_normal(v1, &g, 0, 1, -0.5, 2) == 0, "trunc_normal");
    moments(v1, &m, &s, &lo, &hi);
    ok(lo >= -0.5 && hi <= 2, "within [-0.5, 2] (got %.4f, %.4f)", lo, hi);
    double al = -0.5, be = 2, pa = exp(-al * al / 2) / sqrt(2 * 3.14159265358979323846);
    double pb = exp(-be * be / 2) / sqrt(2 * 3.14159265358979323846);
    double z = 0.5 * (erfc(-be / sqrt(2)) - erfc(-al / sqrt(2)));
    double tm = (pa - pb) / z;
    double tv = 1 + (al * pa - be * pb) / z - tm * tm;
    check_moments("trunc_normal [-0.5, 2] moments", v1, tm, sqrt(tv));
    mm_init_trunc_normal(v1, &g, 0, 0.02, -2, 2);
    check_moments("timm trunc_normal_(std=.02): a=-2, b=2 absolute", v1, 0,
                  0.02);
    ok(mm_init_trunc_normal(v1, &g, 0, 1, 10, 11) == -1, "tiny mass refused");
    like(mm_strerror(), "under 1e-3", "message gives the mass");
    ok(mm_init_constant(cw, 1) == 0 && mm_tensor_get1(cw, 577) == 1, "ones");
    mm_init_constant(cw, 0);
    moments(cw, &m, &s, &lo, &hi);
    ok(lo == 0 && hi == 0, "zeros");
    mm_tensor *iv = mm_tensor_new1(ctx, MM_I32, 4);
    ok(mm_init_normal(iv, &g, 0, 1) == -1, "integer tensor refused");

    /* determinism: same seed, same bits; odd numel uses the pair stream */
    mm_tensor *x1 = mm_tensor_new1(ctx, MM_F32, 1001);
    mm_tensor *x2 = mm_tensor_new1(ctx, MM_F32, 1001);
    mm_rng g1, g2;
    mm_rng_seed(&g1, 7);
    mm_rng_seed(&g2, 7);
    mm_init_trunc_normal(x1, &g1, 0, 1, -1, 1);
    mm_init_trunc_normal(x2, &g2, 0, 1, -1, 1);
    ok(memcmp(mm_tensor_data(x1), mm_tensor_data(x2), 1001 * sizeof(float)) == 0,
       "same seed: same bits");
    ok(memcmp(&g1, &g2, sizeof g1) == 0, "same draws consumed");
    mm_rng_seed(&g1, 8);
    mm_init_trunc_normal(x1, &g1, 0, 1, -1, 1);
    ok(memcmp(mm_tensor_data(x1), mm_tensor_data(x2), 1001 * sizeof(float)) != 0,
       "other seed: other bits");
    mm_rng_seed(&g1, 9);
    mm_init_normal(x1, &g1, 0, 1);
    mm_rng_seed(&g2, 9);
    double zz[2];
    mm_rng_normal2(&g2, zz);
    ok(mm_tensor_get1(x1, 0) == (float)zz[0] && mm_tensor_get1(x1, 1) == (float)zz[1],
       "normal fill = z0, z1 of the pair stream");
    mm_rng_seed(&g2, 9);
    for (int i = 0; i < 1002; i++) mm_rng_next(&g2);
    ok(memcmp(&g1, &g2, sizeof g1) == 0, "1001 normals cost 1002 draws");
    mm_ctx_free(ctx);
}

int main(void)
{
    test_radam();
    test_lookahead();
    test_grads();
    test_sched();
    test_init();
    return done_testing();
}
