from aecluster.recipes import builtin_recipes, load_recipe


def test_a_recipe_can_start_from_another(tmp_path):
    (tmp_path / "short.toml").write_text('base = "best"\n[train]\nepochs = 3\n')
    (tmp_path / "shorter.toml").write_text('base = "short.toml"\n[finetune]\nepochs = 1\n')
    best, shorter = load_recipe("best"), load_recipe(tmp_path / "shorter.toml")
    assert shorter["name"] == "shorter"
    assert shorter["train"] == {**best["train"], "epochs": 3}
    assert shorter["finetune"] == {**best["finetune"], "epochs": 1}
    assert shorter["model"] == best["model"] and shorter["views"] == best["views"]


def test_every_builtin_recipe_loads_complete():
    for name in builtin_recipes():
        recipe = load_recipe(name)
        assert recipe["name"] == name and recipe["description"]
        assert set(recipe) == set(load_recipe("baseline"))
