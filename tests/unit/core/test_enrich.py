from gapwatch.core.enrich import enrich


def test_lsoa_2021_resolves_icb_and_national_imd(make_event, tiny_ref):
    profile = enrich(make_event(lsoa_code="E01000105"), tiny_ref)
    assert (profile.icb, profile.imd_quintile, profile.imd_decile) == ("QOP", "5", "9")
    assert profile.quality == ()


def test_a_changed_2011_lsoa_resolves_through_the_lookup(make_event, tiny_ref):
    profile = enrich(make_event(lsoa_code="E01099999"), tiny_ref)
    assert (profile.icb, profile.imd_quintile) == ("QOP", "2")


def test_postcode_resolves_when_no_lsoa_is_given(make_event, tiny_ref):
    profile = enrich(make_event(lsoa_code=None, postcode="m154ab"), tiny_ref)
    assert (profile.icb, profile.imd_quintile) == ("QOP", "3")


def test_unknown_residence_still_counts_in_the_providers_icb(make_event, tiny_ref):
    profile = enrich(make_event(lsoa_code="W01000001", provider_code="RRK"), tiny_ref)
    assert (profile.icb, profile.imd_quintile, profile.imd_decile) == ("QHL", "unknown", "unknown")
    assert profile.quality == ("lsoa_unknown_code",)
    missing = enrich(make_event(lsoa_code=None, postcode=None), tiny_ref)
    assert missing.quality == ("residence_missing",)
    unresolved = enrich(make_event(lsoa_code=None, postcode="ZZ9 9ZZ"), tiny_ref)
    assert unresolved.quality == ("postcode_unresolved",)


def test_bad_demographic_codes_count_as_unknown_with_reasons(make_event, tiny_ref):
    profile = enrich(make_event(sex="M", ethnic_category="Z", age_years=None), tiny_ref)
    assert (profile.sex, profile.ethnic_group, profile.age_band) == ("unknown",) * 3
    assert set(profile.quality) == {"sex_invalid", "ethnicity_not_stated", "age_missing"}


def test_groups_come_from_the_codes(make_event, tiny_ref):
    profile = enrich(make_event(sex="1", ethnic_category="N", age_years=7), tiny_ref)
    assert (profile.sex, profile.ethnic_group, profile.age_band) == ("male", "black", "5-17")


def test_the_resolved_lsoa_2021_code_is_kept_for_small_area_counts(make_event, tiny_ref):
    assert enrich(make_event(lsoa_code="E01000105"), tiny_ref).lsoa == "E01000105"
    # A changed 2011 code and a postcode resolve to a 2021 LSOA; unknown residence to "".
    assert enrich(make_event(lsoa_code="E01099999"), tiny_ref).lsoa == "E01000102"
    assert enrich(make_event(lsoa_code=None, postcode="m154ab"), tiny_ref).lsoa == "E01000103"
    assert enrich(make_event(lsoa_code="W01000001"), tiny_ref).lsoa == ""
