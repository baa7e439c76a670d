from facexai.models.registry import ModelSpec, cam_layer, count_parameters, create_model, get_spec, list_models

__all__ = ["ModelSpec", "cam_layer", "count_parameters", "create_model", "get_spec", "list_models"]
